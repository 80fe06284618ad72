"""A published version as a HATS catalogue (Hierarchical Adaptive Tiling Scheme; LSDB, hats-import), so
that the field's tools (lsdb, the Rubin and IRSA HATS services) can cross-match skysift's scores and
similarity neighbours with any other catalogue.

    skysift export-hats --artifacts artifacts --out exports --k 10                 # artifacts/current
    skysift export-hats --artifacts artifacts --version 20261207T0100Z-ab12cd --out exports --name dr9_sim

    import lsdb
    cat = lsdb.open_catalog("exports/skysift")
    cat.crossmatch(other, radius_arcsec=1.0, suffix_method="overlapping_columns")

Columns, one row per object with a known position:
- `object_id`, `ra`, `dec` (deg, ICRS) and the catalogue columns asked for (`columns=`: z, mag_r, ...);
- the version's scores: `anomaly_score`, `lens_score`, `quality_score`, `combined_score` (those the
  version has: older versions lack the last two);
- `nbr_1` ... `nbr_k`: the object ids of its k most similar objects, nearest first, itself left out,
  from the version's own index (index.faiss, the same answers as the service's unfiltered search);
  `nbr_dist_1` ... `nbr_dist_k`: their distances, 1 - cosine similarity of the L2-normalised
  embeddings (0 identical, 2 opposite). Flat columns rather than one list column: every Parquet
  reader, TOPCAT and a VOTable can take them. Where the index returns fewer than k (k >= objects),
  the id is null and the distance NaN.
Objects of unknown position (ra, dec NaN: an image folder without a catalogue) have no place on a
HEALPix tiling; they are left out and counted in the result's `n_no_position` (and in the catalogue's
properties as `skysift_n_no_position`), never dropped unsaid. They still appear as neighbours.

How: the neighbours are searched in batches of `batch_size` queries (memory: batch x (k+1) hits,
plus the index), written to Parquet files of at most `rows_per_file` rows in a staging folder next to
the output, imported with hats-import (`ImportArguments`, a dask `Client`: in-process threads for one
worker, processes for more), then the finished catalogue is renamed into place: a crash leaves no
half-written catalogue under the output name.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import index_types
from .artifacts import read_manifest
from .errors import ArtifactError, ArtifactMismatch
from .searchers import ONDISK_DIR, open_index

SCORE_COLUMNS = ("anomaly_score", "lens_score", "quality_score", "combined_score")
ROWS_PER_FILE = 1_000_000


@dataclass
class HatsExport:
    """What an export wrote: the catalogue folder, the version, the counts."""

    catalog_path: Path
    version: str
    n_objects: int
    n_exported: int
    n_no_position: int
    k: int
    columns: list[str] = field(default_factory=list)


def neighbours(searcher: Any, embeddings: np.ndarray, k: int, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k nearest other rows: (rows (N, k) int64, -1 where missing; distances (N, k) float32).

    Asks the index for k + 1 hits per row and drops the row itself wherever it appears; when it
    does not (an approximate index, or exact duplicates tied with it) the last hit is dropped."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n = len(embeddings)
    out_ids = np.full((n, k), -1, dtype=np.int64)
    out_dist = np.full((n, k), np.nan, dtype=np.float32)
    for start in range(0, n, batch_size):
        q = np.asarray(embeddings[start : start + batch_size], dtype=np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True).clip(1e-12)  # float16 rows are unit norm to ~1e-3
        dist, ids = searcher.search(q, k + 1)  # (b, k+1), nearest first
        b = len(q)
        rows = np.arange(start, start + b)
        is_self = ids == rows[:, None]
        drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)
        keep = np.ones(ids.shape, dtype=bool)
        keep[np.arange(b), drop] = False
        ids, dist = ids[keep].reshape(b, k), dist[keep].reshape(b, k)
        dist[ids < 0] = np.nan
        out_ids[start : start + b], out_dist[start : start + b] = ids, dist
    return out_ids, out_dist


def export_hats(
    version_dir: Path,
    out_dir: Path,
    *,
    name: str = "skysift",
    k: int = 10,
    columns: Sequence[str] = (),
    batch_size: int = 4096,
    rows_per_file: int = ROWS_PER_FILE,
    workers: int = 1,
    pixel_threshold: int = 1_000_000,
    overwrite: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> HatsExport:
    """Write the version in `version_dir` as the HATS catalogue `out_dir/name`; see the module docstring."""
    version_dir, out_dir = Path(version_dir).resolve(), Path(out_dir)
    if k < 1 or batch_size < 1 or rows_per_file < 1 or workers < 1:
        raise ValueError("k, batch_size, rows_per_file and workers must be >= 1")
    target = out_dir / name
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target}: already exists; pass overwrite=True to replace it")
    manifest = read_manifest(version_dir)
    n = int(manifest["n_objects"])
    table = _objects_table(version_dir, n, list(columns))
    embeddings = np.load(version_dir / "embeddings.npy", mmap_mode="r")
    if embeddings.shape[0] != n:
        raise ArtifactMismatch(f"{version_dir}: embeddings.npy has {embeddings.shape[0]} rows, manifest {n}")
    spec_keys = ("factory", "metric", "search_params", "train_size", "build_params", "storage")
    spec = index_types.IndexSpec.from_json({key: v for key, v in manifest["index"].items() if key in spec_keys})
    index_path = version_dir / (ONDISK_DIR if spec.storage == "ondisk" else "index.faiss")
    if not index_path.exists():
        raise ArtifactError(f"{version_dir}: no {index_path.name} to find the neighbours with")
    index = open_index(version_dir, spec)  # in memory or on disk, as the service searches it
    if index.ntotal != n:
        raise ArtifactMismatch(f"{version_dir}: the index holds {index.ntotal} vectors, manifest {n}")
    log(f"{n} objects: {k} neighbours each, in batches of {batch_size}")
    nbr_rows, nbr_dist = neighbours(index, embeddings, k, batch_size)
    ids = table.column("object_id").to_numpy(zero_copy_only=False).astype(object)
    for j in range(k):
        r = nbr_rows[:, j]
        table = table.append_column(f"nbr_{j + 1}", pa.array(np.where(r >= 0, ids[r.clip(0)], None), pa.string()))
    for j in range(k):
        table = table.append_column(f"nbr_dist_{j + 1}", pa.array(nbr_dist[:, j], pa.float32()))
    ra, dec = table.column("ra").to_numpy(), table.column("dec").to_numpy()
    placed = np.isfinite(ra) & np.isfinite(dec)
    n_no_position = int((~placed).sum())
    table = table.filter(pa.array(placed))
    if not len(table):
        raise ArtifactError(f"{version_dir}: no object has a sky position; a HATS catalogue needs ra/dec")

    out_dir.mkdir(parents=True, exist_ok=True)
    staging = out_dir / f".{name}.partial"
    shutil.rmtree(staging, ignore_errors=True)  # a previous export killed half-way
    try:
        files = _write_inputs(table, staging / "input", rows_per_file)
        properties = {
            "skysift_version": manifest.get("version", version_dir.name),
            "skysift_encoder_sha256": manifest.get("encoder", {}).get("weights_sha256", ""),
            "skysift_neighbours": f"nbr_1..nbr_{k}: object ids of the {k} most similar objects, nearest first; "
                                  f"nbr_dist_1..nbr_dist_{k}: 1 - cosine similarity",
            "skysift_n_no_position": str(n_no_position),
            "hats_cols_survey_id": "object_id",
        }
        log(f"hats-import of {len(table)} rows from {len(files)} file(s)")
        _import(files, staging, name, len(table), workers, pixel_threshold, properties)
        if target.exists():
            shutil.rmtree(target)
        (staging / name).rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return HatsExport(target, str(manifest.get("version", version_dir.name)), n, len(table), n_no_position, k,
                      table.column_names)


def _objects_table(version_dir: Path, n: int, columns: list[str]) -> pa.Table:
    """object_id, ra, dec, the asked catalogue columns and the scores, in row order, checked against each other."""
    cat_schema = pq.read_schema(version_dir / "catalog.parquet")
    unknown = [c for c in columns if c not in cat_schema.names]
    if unknown:
        raise ValueError(f"columns {unknown} are not in this version's catalog (it has {', '.join(cat_schema.names)})")
    wanted = ["object_id", "ra", "dec", *[c for c in columns if c not in ("object_id", "ra", "dec")]]
    catalog = pq.read_table(version_dir / "catalog.parquet", columns=wanted)
    score_names = pq.read_schema(version_dir / "scores.parquet").names
    present = [c for c in SCORE_COLUMNS if c in score_names]
    scores = pq.read_table(version_dir / "scores.parquet", columns=["object_id", *present])
    if len(catalog) != n or len(scores) != n:
        raise ArtifactMismatch(f"{version_dir}: catalog {len(catalog)} rows, scores {len(scores)}, manifest {n}")
    if not catalog.column("object_id").equals(scores.column("object_id")):
        raise ArtifactMismatch(f"{version_dir}: catalog.parquet and scores.parquet list the objects differently")
    for c in present:
        catalog = catalog.append_column(c, scores.column(c))
    return catalog.combine_chunks()


def _write_inputs(table: pa.Table, folder: Path, rows_per_file: int) -> list[Path]:
    folder.mkdir(parents=True)
    files = []
    for i, start in enumerate(range(0, len(table), rows_per_file)):
        path = folder / f"part-{i:05d}.parquet"
        pq.write_table(table.slice(start, rows_per_file), path)
        files.append(path)
    return files


def _import(files: list[Path], staging: Path, name: str, n_rows: int, workers: int, pixel_threshold: int,
            properties: dict[str, str]) -> None:
    from dask.distributed import Client
    from hats_import.catalog.arguments import ImportArguments
    from hats_import.pipeline import pipeline_with_client

    args = ImportArguments(
        output_path=staging, output_artifact_name=name, input_file_list=[str(f) for f in files],
        file_reader="parquet", ra_column="ra", dec_column="dec", sort_columns="object_id",
        pixel_threshold=pixel_threshold, expected_total_rows=n_rows, tmp_dir=staging / "tmp",
        resume=False, progress_bar=False, addl_hats_properties=properties,
    )
    # One worker: threads in this process (no process start-up, nothing to pickle across); more: processes.
    with Client(n_workers=workers, threads_per_worker=1, processes=workers > 1, dashboard_address=None,
                local_directory=str(staging / "dask")) as client:
        pipeline_with_client(args, client)
