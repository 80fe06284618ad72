"""Uploaded cutouts, the service's side: the byte limit of an upload's body, the version's encoder
(cached per version directory), and one query vector.

Decoding the uploaded bytes (FITS/PNG/JPEG/NPY) onto the model's grid is encoder/upload.py, the one
decoder shared with anything else that embeds a user's file; this module adds only what is about
HTTP request bodies (UploadTooLarge, BadForm, NotMultipart; the byte limit of the whole body is
app.middleware.LimitBodies's) and about serving a published version.
"""

from __future__ import annotations

import numpy as np

from encoder.card import ModelCard
from encoder.embed import embed_array
from encoder.model import Encoder
from encoder.upload import UploadError
from encoder.weights import load_encoder
from indexer.store import IndexedSurvey

FORM_OVERHEAD_BYTES = 64 * 1024  # multipart framing + small fields allowed on top of the file limit


# ---- named errors about the request body (app/errors.py maps each class to a status and an error code)


class UploadTooLarge(UploadError):
    """The file part is over max_upload_bytes (a body over body_limit is refused before, by
    app.middleware.LimitBodies, with the same error code)."""


class BadForm(UploadError):
    """The request is not a well-formed multipart form with one `file` part."""


class NotMultipart(BadForm):
    """The request body is not multipart/form-data at all."""


# ---- the body limit of the upload route (enforced by app.middleware.LimitBodies)


def body_limit(max_upload_bytes: int) -> int:
    return max_upload_bytes + FORM_OVERHEAD_BYTES


# ---- the version's encoder


def encoder_for(store: IndexedSurvey) -> tuple[Encoder, ModelCard]:
    """The encoder that built `store`, loaded on first use and kept with the version (raises
    WeightsError, ArtifactMismatch); its card normalises uploads in the indexed survey's units."""

    def load() -> tuple[Encoder, ModelCard]:
        encoder, card = load_encoder(store.encoder_dir)
        store.check_encoder(card.weights_sha256)
        return encoder, card.for_survey(store.units)

    return store.derived("encoder", load)


def stamp_size(store: IndexedSurvey, card: ModelCard) -> int:
    """Side of the survey's stamps (what the index was built from), else the model's input."""
    shape = store.info.survey.image_shape
    return int(shape[-1]) if shape else card.preprocess.input_size_px


def embed_upload(encoder: Encoder, card: ModelCard, pixels: np.ndarray) -> np.ndarray:
    """(C, S, S) on the model's grid -> (D,) unit vector, embedded exactly like the survey."""
    return embed_array(encoder, card, pixels[None])[0]
