"""Milvus as the read side's vector engine: one collection per published version.

Why: one FAISS index in one process's memory stops at one machine. A survey team that outgrows
it runs Milvus (Standalone, or Distributed on Kubernetes) and keeps skysift's API, versions and
swaps. The same client code talks to Milvus Lite (an embedded engine in a ``.db`` folder: tests,
a laptop) and to a server (``http://host:19530``).

* **A version is a collection** named after it (``skysift_<version>``) holding each object's
  row number (the primary key, the same row as catalog.parquet and embeddings.npy), its vector and
  the catalogue columns that filters need: redshift, magnitude, HEALPix pixel and the scores.
  The build creates it (dropping a half-made one left by a killed build) before the manifest is
  written, and the manifest names it: a version without a manifest is never served, so a
  collection without one is at worst an orphan (``skysift versions --remove-orphans`` drops it).
* **`current` is an alias** switched with one ``alter_alias`` call (atomic in Milvus) every time
  ``artifacts.point_current`` moves the ``current`` link: publish and rollback. The service follows
  the ``current`` link like the FAISS backend and searches the collection its manifest names, so a
  request never mixes two versions; the alias is for other Milvus clients.
* **Filters are pushed down** as a boolean expression (``z >= 0.1 and healpix >= 1024 and ...``);
  the read side still checks every hit against its exact mask (the HEALPix ranges of a cone are a
  superset of it) and keeps the exact-k guarantee by falling back to its exact scan (store.py).
* Missing values (NaN redshift) are stored as null, which no comparison selects, as NaN does in
  the FAISS path's numpy mask.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError, ArtifactMismatch

MAX_LIMIT = 16_384  # Milvus refuses a search limit (topk) above this
INSERT_BATCH = 4096  # rows per insert call: well under Milvus's 64 MB gRPC message limit at 2048-d
FLAT_MAX_N = 100_000  # index choice in "auto": brute force below, HNSW above (index_types' settings)
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF = 32, 160, 64
VECTOR, ROW = "vec", "row"
# filterable scalar fields: catalogue columns under fixed names (the manifest's `columns` maps them)
SCALARS = ("z", "mag", "healpix", "anomaly_score", "lens_score", "quality_score", "combined_score")
INDEX_TYPES = ("auto", "FLAT", "HNSW", "IVF_FLAT")


class MilvusUnavailable(ArtifactError):
    """Milvus could not be reached or refused an operation; the message names the URI and the flag."""


def check_uri(uri: str) -> str:
    """A server URL as given, or a Milvus Lite file made absolute (the manifest must name the same
    file whatever the reader's working directory). Anything else is refused with the flag to fix."""
    uri = str(uri).strip()
    if re.match(r"^(https?|tcp|grpc|unix)://", uri):
        return uri
    if uri.endswith(".db"):
        return str(Path(uri).expanduser().resolve())
    raise MilvusUnavailable(
        f"{uri!r} is neither a Milvus server URL (http://host:19530) nor a Milvus Lite file ending in .db; "
        "pass --milvus-uri (SKYSIFT_INDEX_MILVUS_URI, or SKYSIFT_MILVUS_URI for the service)")


_clients: dict[str, Any] = {}  # one client per URI and process: a Lite file admits one owner process
_clients_lock = threading.Lock()


def connect(uri: str) -> Any:
    """The process's MilvusClient for `uri` (created on first use)."""
    uri = check_uri(uri)
    with _clients_lock:
        if uri not in _clients:
            from pymilvus import MilvusClient

            try:
                _clients[uri] = MilvusClient(uri)
            except Exception as e:  # pymilvus raises its own and gRPC's errors
                raise MilvusUnavailable(f"cannot reach Milvus at {uri}: {e}; check --milvus-uri / "
                                        "SKYSIFT_MILVUS_URI and that the server is up") from e
        return _clients[uri]


def collection_name(version: str, prefix: str = "skysift_") -> str:
    """Milvus names allow letters, digits and underscores only, starting with a letter or '_'."""
    return prefix + re.sub(r"[^0-9A-Za-z_]", "_", version)


def _index_params(client: Any, index_type: str, n: int) -> tuple[Any, dict[str, Any]]:
    if index_type not in INDEX_TYPES:
        raise ValueError(f"Milvus index type {index_type!r} is not one of {list(INDEX_TYPES)}")
    kind = ("FLAT" if n < FLAT_MAX_N else "HNSW") if index_type == "auto" else index_type
    build: dict[str, Any] = {}
    search: dict[str, Any] = {}
    if kind == "HNSW":
        build, search = {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION}, {"ef": HNSW_EF}
    elif kind == "IVF_FLAT":
        nlist = max(1, min(65_536, 2 ** round(np.log2(max(4 * np.sqrt(n), 1)))))
        build, search = {"nlist": nlist}, {"nprobe": 32}
    params = client.prepare_index_params()
    params.add_index(field_name=VECTOR, index_type=kind, metric_type="IP", params=build)
    return params, {"index_type": kind, "build_params": build, "search_params": search}


def create_collection(uri: str, name: str, vectors: np.ndarray, columns: Mapping[str, np.ndarray],
                      index_type: str = "auto") -> dict[str, Any]:
    """Create collection `name` holding `vectors` (N, D) unit-norm and the SCALARS `columns` (each
    length N; NaN stored as null), dropping any collection of that name first. Returns the
    manifest's `milvus` part."""
    from pymilvus import DataType

    uri = check_uri(uri)
    n, d = vectors.shape
    missing = sorted(set(SCALARS) - set(columns))
    if missing:
        raise ValueError(f"columns {missing} missing for the Milvus collection")
    client = connect(uri)
    try:
        if client.has_collection(name):
            client.drop_collection(name)  # half-made by a killed build of the same name
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False,
                                      description="skysift version: vectors + the columns filters need")
        schema.add_field(ROW, DataType.INT64, is_primary=True)
        schema.add_field(VECTOR, DataType.FLOAT_VECTOR, dim=int(d))
        for col in SCALARS:
            schema.add_field(col, DataType.INT64 if col == "healpix" else DataType.FLOAT, nullable=col != "healpix")
        index_params, meta = _index_params(client, index_type, n)
        client.create_collection(name, schema=schema, index_params=index_params)
        cols = {c: np.asarray(columns[c]) for c in SCALARS}
        for start in range(0, n, INSERT_BATCH):
            stop = min(n, start + INSERT_BATCH)
            block = np.asarray(vectors[start:stop], dtype=np.float32)
            rows = []
            for j, i in enumerate(range(start, stop)):
                rec: dict[str, Any] = {ROW: i, VECTOR: block[j]}
                for c in SCALARS:
                    v = cols[c][i]
                    rec[c] = int(v) if c == "healpix" else (None if not np.isfinite(v) else float(v))
                rows.append(rec)
            client.insert(name, rows)
        client.flush(name)
        client.load_collection(name)
    except MilvusUnavailable:
        raise
    except Exception as e:
        raise MilvusUnavailable(f"Milvus at {uri} failed to build collection {name}: {e}") from e
    return {"uri": uri, "collection": name, "n_objects": int(n), "embedding_dim": int(d), **meta}


def point_alias(uri: str, alias: str, collection: str) -> None:
    """Make `alias` name `collection` (alter if it exists, else create): one atomic switch."""
    client = connect(uri)
    target = alias_target(uri, alias)
    try:
        if target is None:
            client.create_alias(collection_name=collection, alias=alias)
        elif target != collection:
            client.alter_alias(collection_name=collection, alias=alias)
    except Exception as e:
        raise MilvusUnavailable(f"Milvus at {uri} could not point alias {alias} at {collection}: {e}") from e


def alias_target(uri: str, alias: str) -> str | None:
    """The collection `alias` names, or None when there is no such alias."""
    client = connect(uri)
    try:
        for name in client.list_collections():
            if alias in client.list_aliases(collection_name=name).get("aliases", []):
                return str(name)
    except Exception as e:
        raise MilvusUnavailable(f"Milvus at {uri} could not list aliases: {e}") from e
    return None


def drop_collection(uri: str, name: str) -> None:
    client = connect(uri)
    if client.has_collection(name):
        client.drop_collection(name)


def healpix_ranges(pixels: np.ndarray, shift: int) -> list[tuple[int, int]]:
    """Fine-level [lo, hi) ranges covering coarse nested pixels (pixel P at `shift` bits coarser is
    rows P << shift ... (P + 1) << shift - 1), adjacent ones merged."""
    out: list[tuple[int, int]] = []
    for p in np.unique(np.asarray(pixels, dtype=np.int64)):
        lo, hi = int(p) << shift, (int(p) + 1) << shift
        if out and out[-1][1] == lo:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def filter_expression(z_min: float | None = None, z_max: float | None = None, mag_max: float | None = None,
                      healpix: list[tuple[int, int]] | None = None) -> str:
    """A Milvus boolean expression for the catalogue filters ("" when none applies)."""
    terms = []
    if z_min is not None:
        terms.append(f"z >= {float(z_min)!r}")
    if z_max is not None:
        terms.append(f"z <= {float(z_max)!r}")
    if mag_max is not None:
        terms.append(f"mag <= {float(mag_max)!r}")
    if healpix is not None:
        ranges = " or ".join(f"(healpix >= {lo} and healpix < {hi})" for lo, hi in healpix)
        terms.append(f"({ranges})" if ranges else "healpix < -1")  # an empty cone selects nothing
    return " and ".join(terms)


class MilvusIndex:
    """Top-k search on one version's collection, answering like `index_types.search`."""

    supports_filter = True
    max_k = MAX_LIMIT

    def __init__(self, part: Mapping[str, Any], uri: str | None = None, expected_n: int | None = None) -> None:
        self.uri = check_uri(uri or str(part["uri"]))
        self.collection = str(part["collection"])
        self.d = int(part["embedding_dim"])
        self.search_params = dict(part.get("search_params") or {})
        self.client = connect(self.uri)
        try:
            if not self.client.has_collection(self.collection):
                raise ArtifactMismatch(f"Milvus at {self.uri} has no collection {self.collection}")
            self.client.load_collection(self.collection)
            stats = self.client.get_collection_stats(self.collection)
        except ArtifactMismatch:
            raise
        except Exception as e:
            raise MilvusUnavailable(f"cannot open collection {self.collection} at {self.uri}: {e}") from e
        self.ntotal = int(stats["row_count"])
        if expected_n is not None and self.ntotal != expected_n:
            raise ArtifactMismatch(f"Milvus collection {self.collection} holds {self.ntotal} objects, "
                                   f"the version {expected_n}")

    def search(self, queries: np.ndarray, k: int, where: str = "") -> tuple[np.ndarray, np.ndarray]:
        """(1 - cosine (Q, k) float32, rows (Q, k) int64), nearest first; -1 / inf past the hits."""
        if not 1 <= k <= MAX_LIMIT:
            raise ValueError(f"k must be in [1, {MAX_LIMIT}] for Milvus, got {k}")
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.d:
            raise ValueError(f"queries must be (Q, {self.d}), got {q.shape}")
        dist = np.full((len(q), k), np.inf, dtype=np.float32)
        ids = np.full((len(q), k), -1, dtype=np.int64)
        if not len(q):
            return dist, ids
        try:
            hits = self.client.search(self.collection, data=list(q), limit=k, filter=where, anns_field=VECTOR,
                                      search_params={"metric_type": "IP", "params": self.search_params})
        except Exception as e:
            raise MilvusUnavailable(f"Milvus search on {self.collection} at {self.uri} failed: {e}") from e
        for i, row in enumerate(hits):
            for j, h in enumerate(row[:k]):
                ids[i, j] = int(h[ROW])
                dist[i, j] = 1.0 - float(h["distance"])
        return dist, ids
