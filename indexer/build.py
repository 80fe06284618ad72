"""Turn encoded shards into a complete version directory (staged under building/<job>/stage).

    skysift index --survey data/demo --encoder runs/demo/encoder --artifacts artifacts

Everything is written into the stage first; the manifest (with every file's sha256) is written
last, and only `artifacts.publish` moves a stage into versions/.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from astropy import units as u
from astropy_healpix import HEALPix

from encoder.card import ModelCard
from survey.native import NativeSurvey

from . import index_types
from .artifacts import file_entries, now_iso, version_name, write_manifest
from .encode import gather_embeddings
from .errors import ArtifactMismatch
from .scores import knn_anomaly, lens_scores
from .settings import IndexSettings


def healpix_index(ra: np.ndarray, dec: np.ndarray, nside: int) -> np.ndarray:
    hp = HEALPix(nside=nside, order="nested")
    return hp.lonlat_to_healpix(ra * u.deg, dec * u.deg).astype(np.int64)


def known_lens_rows(path: Path | None, survey: NativeSurvey) -> np.ndarray:
    """Rows of the object IDs listed in a CSV (column object_id); unknown IDs are an error."""
    if path is None:
        return np.array([], dtype=np.int64)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "object_id" not in reader.fieldnames:
            raise ValueError(f"{path}: needs an object_id column")
        ids = [r["object_id"] for r in reader]
    rows = []
    for oid in ids:
        rows.append(survey.catalog.row_of(oid))
    return np.array(rows, dtype=np.int64)


def code_version() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def build_version(s: IndexSettings, job: Path, log: Callable[[str], None] = lambda _: None) -> Path:
    """Write the stage for `job` and return its path (not yet published)."""
    emb16 = gather_embeddings(job)
    survey = NativeSurvey(s.survey)
    if len(survey) != len(emb16):
        raise ArtifactMismatch(f"{len(emb16)} embeddings but the survey has {len(survey)} objects")
    card = ModelCard.load(s.encoder)
    stage = job / "stage"
    if stage.exists():
        shutil.rmtree(stage)  # a stage is never live; a half-written one from a crash is rebuilt
    stage.mkdir(parents=True)

    vec = emb16.astype(np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True).clip(1e-12)
    np.save(stage / "embeddings.npy", emb16)
    n, d = vec.shape
    spec = index_types.IndexSpec(s.index_factory) if s.index_factory else index_types.choose_index(
        n, d, s.memory_budget_bytes)
    log(f"index {spec.factory} for {n} x {d}")
    index = index_types.build_index(vec, spec, seed=s.seed)
    recall = index_types.recall_at_k(index, vec, k=min(10, n), sample=min(s.recall_sample, n), seed=s.seed)
    log(f"recall@10 vs exact on {min(s.recall_sample, n)} queries: {recall:.4f}")
    index_types.save_index(index, stage / "index.faiss")

    k = min(s.anomaly_k + 1, n)
    dist = np.concatenate([index_types.search(index, vec[i : i + 8192], k)[0] for i in range(0, n, 8192)])
    anomaly = knn_anomaly(dist)
    lens_rows = known_lens_rows(s.lens_labels, survey)
    lens = lens_scores(vec, lens_rows, seed=s.seed)
    pq.write_table(pa.table({"object_id": survey.catalog["object_id"].astype(str).tolist(), "row": np.arange(n),
                             "anomaly_score": anomaly, "lens_score": lens}), stage / "scores.parquet")

    cat = survey.catalog.to_arrow()
    cat = cat.append_column("row", pa.array(np.arange(n, dtype=np.int64)))
    cat = cat.append_column("healpix", pa.array(healpix_index(survey.catalog["ra"], survey.catalog["dec"], s.healpix_nside)))
    pq.write_table(cat, stage / "catalog.parquet")
    shutil.copytree(s.encoder, stage / "encoder", ignore=shutil.ignore_patterns("*.partial"))

    manifest: dict[str, Any] = {
        "version": version_name(file_entries(stage)),
        "created": now_iso(),
        "code_version": code_version(),
        "n_objects": n,
        "embedding_dim": d,
        "survey": {"path": str(Path(s.survey).resolve()), "name": survey.survey_name, "bands": list(survey.bands),
                   "pixel_scale_arcsec": survey.pixel_scale_arcsec, "image_shape": list(survey.image_shape)},
        "encoder": {"weights_sha256": card.weights_sha256, "backbone": card.backbone,
                    "produced_by": card.produced_by, "input_size_px": card.preprocess.input_size_px},
        "index": {**spec.to_json(), "recall_at_10": recall, "recall_sample": min(s.recall_sample, n)},
        "scores": {"anomaly": f"mean cosine distance to the {k - 1} nearest neighbours",
                   "lens": ("logistic regression + seed similarity from "
                            f"{len(lens_rows)} known lenses") if len(lens_rows) else "none (no known lenses given)",
                   "n_known_lenses": int(len(lens_rows))},
        "columns": {"redshift": s.redshift_column, "magnitude": s.magnitude_column},
        "healpix": {"nside": s.healpix_nside, "order": "nested"},
        "settings": s.model_dump(mode="json"),
    }
    write_manifest(stage, manifest)
    survey.close()
    return stage
