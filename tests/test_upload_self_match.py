"""One preprocessing path: an uploaded copy of an indexed object finds that object first, at
distance ~0, in every upload format, on a survey of real display images (16 SDSS JPEGs from
tests/data/gz1_sdss, ingested as a user would: fit to 64 px, bands i,r,g) and on the simulation.

Ingest and upload share the decoder (survey.readers.image_folder.image_planes), the grid
(survey.readers.resize.conform) and the normalisation (encoder.preprocess.for_survey), so the
embeddings agree to float16 storage precision; a second path that disagrees (a stretch inverted
on one side only, rows flipped on one side) puts the copy far from its original.
"""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.settings import ServiceSettings
from indexer.store import IndexedSurvey

DATA = Path(__file__).parent / "data" / "gz1_sdss"
SAME = 2e-3  # 1 - cosine of a copy: float16 storage of the indexed vectors, nothing else


@pytest.fixture(scope="module")
def real_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from indexer.pipeline import index_survey
    from indexer.settings import IndexSettings
    from survey.ingest import ingest
    from training.augment import AugmentSettings
    from training.loop import train
    from training.settings import TrainSettings

    root = tmp_path_factory.mktemp("real")
    images = root / "images"
    images.mkdir()
    with open(DATA / "labels.csv") as f, open(images / "catalog.csv", "w", newline="") as out:
        w = csv.writer(out)
        w.writerow(["object_id", "ra", "dec", "file", "gz1_class_name"])
        for i, r in enumerate(csv.DictReader(f)):  # positions made up for the test: the files carry none
            shutil.copy(DATA / r["file"], images / r["file"])
            w.writerow([r["objid"], 150.0 + 0.01 * i, 2.0, r["file"], r["gz1_class_name"]])
    ingest(images, "images", root / "survey", pixel_scale_arcsec=0.396, fit_px=64, bands=("i", "r", "g"))
    encoder = train(TrainSettings(
        survey=root / "survey", out_dir=root / "run", epochs=1, max_steps=2, batch_size=4, queue_size=8,
        backbone_kwargs={"channels": [8, 16, 32, 64], "stem_width": 8}, proj_hidden=64, proj_dim=32,
        augment=AugmentSettings(redden=False), workers=0, monitor_size=0, device="cpu"))
    index_survey(IndexSettings(survey=root / "survey", encoder=encoder, artifacts=root / "artifacts", job="real",
                               device="cpu", recall_sample=16, map_method="pca"))
    return root


def client_for(artifacts: Path) -> TestClient:
    return TestClient(create_app(ServiceSettings(artifacts=artifacts, watch_interval_s=0)),
                      raise_server_exceptions=False)


def first_hit(client: TestClient, name: str, data: bytes, **fields: str) -> tuple[str, float]:
    # k is a form field of the upload; as a query parameter it was silently ignored (now a 422)
    r = client.post("/api/v1/search/cutout", files={"file": (name, data)}, data={"k": "5", **fields})
    assert r.status_code == 200, r.text
    top = r.json()["neighbours"][0]
    return top["object_id"], top["distance"]


def npy_bytes(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, x.astype(np.float32))
    return buf.getvalue()


def test_real_image_survey_records_display_units(real_artifacts: Path) -> None:
    store = IndexedSurvey.open_current(real_artifacts / "artifacts")
    assert store.units is not None and store.units.kind == "display"
    assert store.units.rgb == ("i", "r", "g")
    assert store.pixel_scale_arcsec == pytest.approx(0.396 * 423 / 64)
    assert store.source_pixel_scale_arcsec == pytest.approx(0.396)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "fits", "npy"])
def test_upload_of_an_ingested_real_image_finds_itself(real_artifacts: Path, fmt: str) -> None:
    store = IndexedSurvey.open_current(real_artifacts / "artifacts")
    labels = list(csv.DictReader(open(DATA / "labels.csv")))
    with client_for(real_artifacts / "artifacts") as client:
        for r in labels[::3]:
            oid, original = r["objid"], (DATA / r["file"]).read_bytes()
            if fmt == "jpeg":  # the very file that was ingested
                got = first_hit(client, r["file"], original)
            elif fmt == "png":  # the same picture, losslessly re-encoded
                buf = io.BytesIO()
                Image.open(io.BytesIO(original)).save(buf, format="PNG")
                got = first_hit(client, "copy.png", buf.getvalue())
            elif fmt == "fits":  # the service's own FITS of the object
                got = first_hit(client, "copy.fits", client.get(f"/api/v1/cutouts/{oid}.fits").content)
            else:  # the stored stamp as an array, at the survey's scale
                stamp = store.images([store.row_of(oid)])[0]
                got = first_hit(client, "copy.npy", npy_bytes(stamp), bands="i,r,g",
                                pixel_scale_arcsec=str(store.pixel_scale_arcsec))
            assert got[0] == oid and got[1] < SAME, (fmt, oid, got)


def test_display_png_of_the_service_round_trips(real_artifacts: Path) -> None:
    """The service's PNG of a display survey shows the stored values, so it also finds itself."""
    store = IndexedSurvey.open_current(real_artifacts / "artifacts")
    oid = str(store.record(3)["object_id"])
    with client_for(real_artifacts / "artifacts") as client:
        png = client.get(f"/api/v1/cutouts/{oid}.png").content
        got = first_hit(client, "cutout.png", png, pixel_scale_arcsec=str(store.pixel_scale_arcsec))
    assert got[0] == oid and got[1] < 0.01


@pytest.mark.parametrize("fmt", ["fits", "npy"])
def test_upload_of_a_simulated_object_finds_itself(tiny_artifacts: Path, fmt: str) -> None:
    """Flux surveys: the exact formats. (A PNG of a flux survey is an 8-bit Lupton composite whose
    inversion is approximate: clipped cores, no negative sky; tests/app/test_uploads.py covers it.)"""
    store = IndexedSurvey.open_current(tiny_artifacts)
    with client_for(tiny_artifacts) as client:
        for row in range(0, len(store), 40):
            oid = str(store.record(row)["object_id"])
            if fmt == "fits":
                got = first_hit(client, "copy.fits", client.get(f"/api/v1/cutouts/{oid}.fits").content)
            else:
                got = first_hit(client, "copy.npy", npy_bytes(store.images([row])[0]))
            assert got[0] == oid and got[1] < SAME, (fmt, oid, got)
