"""The typed read of a version's manifest.json: what the read side may rely on, checked once when a
version opens instead of at each `manifest["survey"].get(...)` in the routes.

`build.build_version` writes the manifest as a plain dict (the JSON is the contract on disk, with
`files` and their hashes added by `artifacts.write_manifest`); `Manifest.model_validate` reads it.
Fields that older versions lack have defaults saying what those versions meant (no units recorded,
no map, no score descriptions), and unknown keys are kept (`extra="allow"`): a newer writer never
makes an older reader refuse a version.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from survey.units import SurveyUnits


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow")


class SurveyPart(_Part):
    path: str
    name: str = ""
    bands: tuple[str, ...]
    pixel_scale_arcsec: float
    image_shape: tuple[int, int, int] | None = None
    units: SurveyUnits | None = None  # versions built before units were recorded: None
    source_pixel_scale_arcsec: float | None = None  # the scale of the images ingest read (None: as stored)


class EncoderPart(_Part):
    weights_sha256: str
    backbone: str = ""
    produced_by: str = ""
    input_size_px: int | None = None


class IndexPart(_Part):
    factory: str
    metric: str
    search_params: dict[str, Any] = Field(default_factory=dict)
    train_size: int | None = None
    recall_at_10: float | None = None
    recall_sample: int | None = None
    storage: str = "memory"  # "ondisk": IVF-PQ lists in index/ (indexer.ondisk); versions before it: memory


class MilvusPart(_Part):
    """The version's Milvus collection (indexer.milvus_backend.create_collection)."""

    uri: str
    collection: str
    n_objects: int
    embedding_dim: int
    index_type: str = "FLAT"
    search_params: dict[str, Any] = Field(default_factory=dict)
    alias: str | None = None  # the alias publish and rollback point at the current version's collection
    artifacts: str | None = None  # the artifacts root that owns the collection (only it moves the alias or drops)


class MapPart(_Part):
    file: str
    method: str


class Manifest(_Part):
    version: str
    created: str = ""
    build_key: str | None = None
    code_version: str | None = None
    n_objects: int
    embedding_dim: int
    survey: SurveyPart
    encoder: EncoderPart
    index: IndexPart
    milvus: MilvusPart | None = None  # built with `--backend milvus`: the collection that also serves it
    # what each ranking's score is, in words (anomaly, lens, artifact, combined) plus their parameters
    scores: dict[str, Any] = Field(default_factory=dict)
    columns: dict[str, str] = Field(default_factory=lambda: {"redshift": "z", "magnitude": "mag_r"})
    healpix: dict[str, Any] = Field(default_factory=lambda: {"nside": 256, "order": "nested"})
    map: MapPart | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, Any] = Field(default_factory=dict)  # every file's bytes and sha256 (artifacts.validate)

    def describe(self, ranking: str) -> str | None:
        """The words the manifest has for a ranking's score, or None."""
        text = self.scores.get(ranking)
        return text if isinstance(text, str) else None
