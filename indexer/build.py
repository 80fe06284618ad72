"""Turn encoded shards into a complete version directory (staged under building/<job>/stage).

    skysift index --survey data/demo --encoder runs/demo/encoder --artifacts artifacts

Everything is written into the stage first; the manifest (with every file's sha256) is written
last, and only `artifacts.publish` moves a stage into versions/. A crash while building leaves a
stage without a manifest, which publish refuses and the next build replaces.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import re
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
from .artifacts import crash_point, file_entries, now_iso, sha256_file, version_name, write_manifest
from .encode import gather_embeddings, read_plan
from .errors import ArtifactMismatch
from .milvus_backend import collection_name, create_collection
from .profiles import survey_profiles
from .projection import project_2d, resolve_method
from .quality import FEATURES as QUALITY_FEATURES
from .quality import QUALITY_DESCRIPTION, quality_score, robust_z, survey_quality
from .quality import REVISION as QUALITY_REVISION
from .scores import anomaly_scores, lens_scores
from .searchers import ONDISK_DIR, FaissSearcher, Searcher, open_index
from .settings import IndexSettings

ANOMALY_DESCRIPTIONS = {
    "mean": "mean cosine distance to the {k} nearest neighbours",
    "kth": "cosine distance to the {k}-th nearest neighbour",
    "lof": "local outlier factor over the {k} nearest neighbours (cosine distance)",
}


def healpix_index(ra: np.ndarray, dec: np.ndarray, nside: int) -> np.ndarray:
    """Nested HEALPix pixel of each position; -1 where the position is unknown (ra/dec NaN), so
    such objects fall in no cone."""
    ra, dec = np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64)
    out = np.full(ra.shape, -1, dtype=np.int64)
    known = np.isfinite(ra) & np.isfinite(dec)
    if known.any():
        hp = HEALPix(nside=nside, order="nested")
        out[known] = hp.lonlat_to_healpix(ra[known] * u.deg, dec[known] * u.deg).astype(np.int64)
    return out


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


# Settings that change how a version is built or run but not what it holds (the survey's and the
# encoder's content are in the job's plan key, whatever folder they are read from).
NOT_IN_BUILD_KEY = frozenset({"survey", "encoder", "artifacts", "job", "batch_size", "device", "precision",
                              "workers", "prefetch", "lens_labels"})


def build_key(s: IndexSettings, job: Path) -> str:
    """sha256 of what a build of `job` depends on: the job's plan key (survey pixels and ids,
    encoder weights and preprocessing, shard size, precision), the settings that shape the index,
    scores and map, and the known-lens list's bytes. Two builds with the same key hold the same
    objects, index and scores, so a re-run may finish publishing the earlier one instead."""
    ident: dict[str, Any] = {k: v for k, v in s.model_dump(mode="json").items() if k not in NOT_IN_BUILD_KEY}
    ident["plan_key"] = read_plan(job).get("key")
    ident["lens_labels_sha256"] = sha256_file(Path(s.lens_labels)) if s.lens_labels else None
    ident["quality_revision"] = QUALITY_REVISION
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


def job_quality(job: Path, survey: NativeSurvey, log: Callable[[str], None]) -> dict[str, np.ndarray]:
    """The pixel data-quality detectors (indexer.quality) for the job's plan, computed once: kept in the
    job folder under the plan's key and the detectors' revision (written atomically), so a rebuild after
    a crash or of another index type reads them back, and re-ingested pixels (a new plan) or changed
    detectors are measured again."""
    def measure() -> dict[str, np.ndarray]:
        log(f"data-quality detectors on {len(survey)} stamps")
        return survey_quality(survey)

    return _kept_in_job(job, f"quality-r{QUALITY_REVISION}", QUALITY_FEATURES, len(survey), measure)


def job_profiles(job: Path, survey: NativeSurvey, log: Callable[[str], None]) -> np.ndarray:
    """The radial light profiles (indexer.profiles) the lens learner reads, kept like job_quality's."""
    def measure() -> dict[str, np.ndarray]:
        log(f"radial profiles of {len(survey)} stamps")
        return {"profiles": survey_profiles(survey)}

    return _kept_in_job(job, "profiles", ("profiles",), len(survey), measure)["profiles"]


def _kept_in_job(job: Path, name: str, keys: tuple[str, ...], n: int,
                 measure: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    path = job / f"{name}-{read_plan(job)['key'][:16]}.npz"
    if path.exists():
        with np.load(path) as f:
            if set(f.files) == set(keys) and all(len(f[k]) == n for k in f.files):
                return {k: f[k] for k in keys}
    values = measure()
    tmp = path.with_name(path.name + ".partial.npz")
    np.savez(tmp, **values)  # type: ignore[arg-type]  # numpy stubs type the keyword arrays as allow_pickle
    os.replace(tmp, path)
    return values


def _build_index(s: IndexSettings, vec: np.ndarray, stage: Path, log: Callable[[str], None]) -> FaissSearcher:
    """The version's FAISS index, in memory (index.faiss) or with IVF-PQ lists on disk (index/ next
    to embeddings.npy, whose float16 rows it re-ranks with), as a searcher of the staged files."""
    n, d = vec.shape
    if s.index_factory:
        spec = index_types.IndexSpec(s.index_factory)
    elif s.index_storage == "ondisk":
        spec = index_types.ondisk_spec(n, d)
        # forced on a small survey: 8-bit PQ k-means needs at least 2^8 training rows, so fewer bits
        bits = int(np.clip(np.floor(np.log2(n)), 1, 8))
        if bits < 8:
            spec = dataclasses.replace(spec, factory=re.sub(r"PQ(\d+)x8", rf"PQ\1x{bits}", spec.factory))
    else:
        spec = index_types.choose_index(n, d, s.memory_budget_bytes, ondisk=s.index_storage == "auto")
    log(f"index {spec.factory} ({spec.storage}) for {n} x {d}")
    if spec.storage == "ondisk":
        from .ondisk import build_ondisk

        build_ondisk(np.load(stage / "embeddings.npy", mmap_mode="r"), stage / ONDISK_DIR, spec, seed=s.seed,
                     processes=s.index_processes)
        return open_index(stage, spec)
    index_types.save_index(index_types.build_index(vec, spec, seed=s.seed), stage / "index.faiss")
    return open_index(stage, spec)


def searcher_recall(searcher: Searcher, vec: np.ndarray, *, k: int, sample: int, seed: int) -> float:
    """recall@k of a searcher against exact inner-product search over `vec` (its rows), on `sample`
    seeded rows as queries (index_types.recall_at_k for any engine)."""
    import faiss

    rows = np.sort(np.random.default_rng(seed).choice(len(vec), size=min(sample, len(vec)), replace=False))
    _, exact = faiss.knn(vec[rows], vec, k, metric=faiss.METRIC_INNER_PRODUCT)
    return index_types.intersection_recall(searcher.search(vec[rows], k)[1], exact)


def _float_column(catalog: Any, name: str, n: int) -> np.ndarray:
    """A catalogue column as float (NaN where absent: a survey without redshifts has no z filter)."""
    return np.asarray(catalog[name], dtype=np.float64) if name in catalog else np.full(n, np.nan)


def build_version(s: IndexSettings, job: Path, log: Callable[[str], None] = lambda _: None) -> Path:
    """Write the stage for `job` and return its path (not yet published)."""
    emb16 = gather_embeddings(job)
    survey = NativeSurvey(s.survey)
    if len(survey) != len(emb16):
        raise ArtifactMismatch(f"{len(emb16)} embeddings but the survey has {len(survey)} objects")
    ids = survey.catalog["object_id"].astype(str)  # unique: Catalog refuses duplicates; publish re-checks
    card = ModelCard.load(s.encoder)
    if read_plan(job)["weights_sha256"] != card.weights_sha256:
        raise ArtifactMismatch(f"{job} was encoded with other weights than {s.encoder}")
    stage = job / "stage"
    if stage.exists():
        shutil.rmtree(stage)  # a stage is never live; a half-written one from a crash is rebuilt
    stage.mkdir(parents=True)

    vec = emb16.astype(np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True).clip(1e-12)
    np.save(stage / "embeddings.npy", emb16)
    crash_point("build.mid_stage")  # a half-written stage: no manifest, so never publishable
    n, d = vec.shape
    searcher = _build_index(s, vec, stage, log)
    recall = searcher_recall(searcher, vec, k=min(10, n), sample=min(s.recall_sample, n), seed=s.seed)
    log(f"recall@10 vs exact on {min(s.recall_sample, n)} queries: {recall:.4f}")
    spec = searcher.spec

    k = min(s.anomaly_k + 1, n)
    hits = [searcher.search(vec[i : i + 8192], k) for i in range(0, n, 8192)]
    dist, nbr = np.concatenate([h[0] for h in hits]), np.concatenate([h[1] for h in hits])
    anomaly = anomaly_scores(dist, nbr, s.anomaly_method)
    lens_rows = known_lens_rows(s.lens_labels, survey)
    lens = lens_scores(vec, lens_rows, seed=s.seed)
    known = np.zeros(n, dtype=bool)
    known[lens_rows] = True  # the seeds: the lens ranking flags them and leaves them out of its candidates
    feats = job_quality(job, survey, log)
    np.save(stage / "lens_features.npy", job_profiles(job, survey, log).astype(np.float16))
    quality, worst = quality_score(feats)
    # One list for "anything odd here": the larger of the two robust z-scores (a broken stamp or an
    # object unlike its neighbours), each against the survey itself.
    combined = np.maximum(robust_z(anomaly), quality)
    pq.write_table(pa.table({"object_id": ids.tolist(), "row": np.arange(n), "anomaly_score": anomaly,
                             "lens_score": lens, "known_lens": known, "quality_score": quality,
                             "quality_flag": [QUALITY_FEATURES[i] for i in worst], "combined_score": combined,
                             **{f"quality_{k}": v for k, v in feats.items()}}), stage / "scores.parquet")

    map_method = resolve_method(s.map_method, n, s.map_umap_min_objects)
    log(f"2-D map by {map_method}")
    np.save(stage / "map.npy", project_2d(vec, map_method, s.seed, fit_max=s.map_fit_max))

    cat = survey.catalog.to_arrow()
    cat = cat.append_column("row", pa.array(np.arange(n, dtype=np.int64)))
    hp = healpix_index(survey.catalog["ra"], survey.catalog["dec"], s.healpix_nside)
    cat = cat.append_column("healpix", pa.array(hp))
    pq.write_table(cat, stage / "catalog.parquet")
    shutil.copytree(s.encoder, stage / "encoder", ignore=shutil.ignore_patterns("*.partial"))
    version = version_name(file_entries(stage))
    milvus = None
    if s.backend == "milvus":
        assert s.milvus_uri is not None  # IndexSettings refuses milvus without a URI
        log(f"Milvus collection {collection_name(version)} at {s.milvus_uri}")
        columns = {"z": _float_column(survey.catalog, s.redshift_column, n),
                   "mag": _float_column(survey.catalog, s.magnitude_column, n), "healpix": hp,
                   "anomaly_score": anomaly, "lens_score": lens, "quality_score": quality, "combined_score": combined}
        milvus = {**create_collection(s.milvus_uri, collection_name(version), vec, columns, s.milvus_index),
                  "alias": s.milvus_alias, "artifacts": str(Path(s.artifacts).resolve())}  # the owner root
    crash_point("build.before_manifest")  # every file written, no manifest yet

    manifest: dict[str, Any] = {
        "version": version,
        "created": now_iso(),
        "build_key": build_key(s, job),
        "code_version": code_version(),
        "n_objects": n,
        "embedding_dim": d,
        "survey": {"path": str(Path(s.survey).resolve()), "name": survey.survey_name, "bands": list(survey.bands),
                   "pixel_scale_arcsec": survey.pixel_scale_arcsec, "image_shape": list(survey.image_shape),
                   "units": survey.units.model_dump(mode="json"),
                   "source_pixel_scale_arcsec": survey.source_pixel_scale_arcsec},
        "encoder": {"weights_sha256": card.weights_sha256, "backbone": card.backbone,
                    "produced_by": card.produced_by, "input_size_px": card.preprocess.input_size_px},
        "index": {**spec.to_json(), "recall_at_10": recall, "recall_sample": min(s.recall_sample, n)},
        **({"milvus": milvus} if milvus is not None else {}),
        "scores": {"anomaly": ANOMALY_DESCRIPTIONS[s.anomaly_method].format(k=k - 1),
                   "anomaly_method": s.anomaly_method, "anomaly_k": k - 1,
                   "lens": ("logistic regression + seed similarity from "
                            f"{len(lens_rows)} known lenses") if len(lens_rows) else "none (no known lenses given)",
                   "n_known_lenses": int(len(lens_rows)),
                   "artifact": QUALITY_DESCRIPTION,
                   "combined": "the larger of the anomaly score's and the data-quality score's robust z-scores "
                               "(median and 1.4826 MAD over the survey): broken pixels or unusual objects"},
        "columns": {"redshift": s.redshift_column, "magnitude": s.magnitude_column},
        "healpix": {"nside": s.healpix_nside, "order": "nested"},
        "map": {"file": "map.npy", "method": map_method, "requested": s.map_method, "seed": s.seed,
                "fit_sample": min(n, s.map_fit_max)},
        "settings": s.model_dump(mode="json"),
    }
    write_manifest(stage, manifest)
    survey.close()
    return stage
