"""The read side: `IndexedSurvey` answers queries from one published version.

It holds the catalog, the float16 embeddings (memory-mapped), the FAISS index, the scores, the
2-D map and a handle on the survey's pixels, and never changes after it is opened: the service
swaps whole `IndexedSurvey` objects when a new version is published.

Filtered search (`search_vector` with `Filters`) returns the k nearest objects that pass the
filters, or all of them when fewer than k pass:
  * when at most EXACT_SUBSET_MAX objects pass, it scans exactly that subset (cosine on the
    re-normalised float16 vectors, the same vectors the index was built from);
  * otherwise it over-fetches from the index, ~(k + excluded) / (fraction passing) x OVERFETCH_MARGIN
    hits, growing 4x until k pass; if that reaches OVERFETCH_MAX hits or the index has nothing
    more to give (an IVF index returns only what its probed lists hold), it falls back to an
    exact blocked scan of the passing subset, so a selective filter never returns too few.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow.parquet as pq
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy_healpix import HEALPix

from survey.catalog import Catalog
from survey.errors import UnknownObject
from survey.native import NativeSurvey

from . import index_types
from .artifacts import current_dir, read_manifest, validate
from .errors import ArtifactMismatch
from .footprint import sky_footprint
from .manifest import Manifest
from .milvus_backend import filter_expression, healpix_ranges
from .searchers import Backend, Searcher, open_searcher

EXACT_SUBSET_MAX = 200_000  # filtered subsets up to this size are searched exactly
OVERFETCH_MARGIN = 2.0  # fetch this many times the expected number of hits needed
OVERFETCH_MAX = 65_536  # beyond this many index hits per query, scan the filtered subset exactly
SCAN_BLOCK = 1 << 18  # rows per block of an exact scan (bounded memory on huge subsets)
CONE_MAX_PIXELS = 1000  # coarsen the HEALPix level until a cone covers about this many pixels
CONE_ALL_ROWS_DEG = 60.0  # wider cones skip the pre-selection


@dataclass(frozen=True)
class Neighbour:
    row: int
    object_id: str
    distance: float  # 1 - cosine similarity


@dataclass(frozen=True)
class Filters:
    """Catalog filters for a similarity query; None means unconstrained."""

    z_min: float | None = None
    z_max: float | None = None
    mag_max: float | None = None
    ra_deg: float | None = None
    dec_deg: float | None = None
    radius_deg: float | None = None

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.z_min, self.z_max, self.mag_max, self.radius_deg))


T = TypeVar("T")


class IndexedSurvey:
    def __init__(self, version_dir: Path, survey_root: Path | None = None, check_hashes: bool = False,
                 backend: Backend = "faiss", milvus_uri: str | None = None) -> None:
        self.dir = Path(version_dir).resolve()
        self._derived: dict[Hashable, Any] = {}
        self._derived_lock = threading.Lock()
        self.manifest = validate(self.dir, check_hashes=check_hashes) if check_hashes else read_manifest(self.dir)
        self.info = Manifest.model_validate(self.manifest)  # the typed read every consumer uses
        m = self.manifest
        self.version: str = self.info.version
        self.catalog = Catalog.from_arrow(pq.read_table(self.dir / "catalog.parquet"))
        # Objects whose position is unknown (ra/dec NaN, e.g. an image folder without a catalogue)
        # are in no cone and never the nearest object to a position.
        self.has_position = np.isfinite(self.catalog["ra"]) & np.isfinite(self.catalog["dec"])
        self.embeddings = np.load(self.dir / "embeddings.npy", mmap_mode="r")
        if len(self.catalog) != m["n_objects"] or self.embeddings.shape != (m["n_objects"], m["embedding_dim"]):
            raise ArtifactMismatch(f"{self.dir}: catalog/embeddings sizes disagree with the manifest")
        spec_keys = ("factory", "metric", "search_params", "train_size", "storage")
        self.spec = index_types.IndexSpec.from_json({k: m["index"][k] for k in spec_keys if k in m["index"]})
        self.backend = backend
        self.searcher: Searcher = open_searcher(self.dir, self.info, backend, milvus_uri)
        scores = pq.read_table(self.dir / "scores.parquet")
        self.anomaly = scores.column("anomaly_score").to_numpy()
        self.lens = scores.column("lens_score").to_numpy()
        # the known lenses the lens score was trained from (versions before this column: none flagged)
        self.known_lens = (scores.column("known_lens").to_numpy(zero_copy_only=False).astype(bool)
                           if "known_lens" in scores.column_names else np.zeros(len(self.lens), dtype=bool))
        # the pixel data-quality score and the combined one (versions before them: none, NaN)
        nan = np.full(len(self.lens), np.nan)
        self.quality = scores.column("quality_score").to_numpy() if "quality_score" in scores.column_names else nan
        self.quality_flag = (np.asarray(scores.column("quality_flag").to_pylist(), dtype=object)
                             if "quality_flag" in scores.column_names else np.full(len(self.lens), None, dtype=object))
        self.combined = (scores.column("combined_score").to_numpy() if "combined_score" in scores.column_names
                         else nan)
        info = self.info
        self.redshift_column = info.columns.get("redshift", "z")
        self.magnitude_column = info.columns.get("magnitude", "mag_r")
        self.healpix = HEALPix(nside=int(info.healpix.get("nside", 256)), order="nested")
        self._survey_root = Path(survey_root) if survey_root else Path(info.survey.path)
        self._survey: NativeSurvey | None = None
        self.bands = info.survey.bands
        self.pixel_scale_arcsec = info.survey.pixel_scale_arcsec
        # What the survey's pixel values mean (survey.units); versions built before units were recorded
        # have none, and their encoder's own levels apply.
        self.units = info.survey.units
        self.source_pixel_scale_arcsec = info.survey.source_pixel_scale_arcsec or self.pixel_scale_arcsec
        # the radial light profiles the lens learner reads (indexer.profiles); versions before them: None
        features = self.dir / "lens_features.npy"
        self.lens_features = np.load(features, mmap_mode="r") if features.exists() else None
        if self.lens_features is not None and len(self.lens_features) != m["n_objects"]:
            raise ArtifactMismatch(f"{self.dir}: lens_features.npy has {len(self.lens_features)} rows "
                                   f"for {m['n_objects']} objects")
        self._map: np.ndarray | None = None
        if info.map is not None:
            self._map = np.load(self.dir / info.map.file, mmap_mode="r")
            if self._map.shape != (m["n_objects"], 2):
                raise ArtifactMismatch(f"{self.dir}: map of shape {self._map.shape} for {m['n_objects']} objects")

    @functools.cached_property
    def footprint(self) -> dict[str, Any] | None:
        """The sky box of the positioned objects (indexer.footprint), None when none has a position."""
        return sky_footprint(self.catalog["ra"], self.catalog["dec"])

    @classmethod
    def open_current(cls, root: Path, survey_root: Path | None = None) -> IndexedSurvey:
        return cls(current_dir(root), survey_root)

    def __len__(self) -> int:
        return len(self.catalog)

    @property
    def map_xy(self) -> np.ndarray | None:
        """(N, 2) float32 explorer map coordinates (row order), or None for versions without one."""
        return self._map

    @property
    def map_method(self) -> str | None:
        return self.info.map.method if self.info.map is not None else None

    @property
    def encoder_dir(self) -> Path:
        return self.dir / "encoder"

    @property
    def weights_sha256(self) -> str:
        return self.info.encoder.weights_sha256

    def check_encoder(self, weights_sha256: str) -> None:
        """Refuse query vectors made by another encoder than the one that built this version."""
        if weights_sha256 != self.weights_sha256:
            raise ArtifactMismatch(
                f"query vector from encoder {weights_sha256[:12]} but version {self.version} was built "
                f"with {self.weights_sha256[:12]}"
            )

    # ---- rows and records
    def row_of(self, object_id: str) -> int:
        return self.catalog.row_of(object_id)

    def has_object(self, object_id: str) -> bool:
        try:
            self.catalog.row_of(object_id)
        except UnknownObject:
            return False
        return True

    def derived(self, key: Hashable, build: Callable[[], T]) -> T:
        """What the service computes from this version on first use (ranking orders, the map payload,
        the loaded encoder), kept with the version and gone with it when a swap drops it: the read
        side is the one owner of per-version state. Built once, under a lock, even when requests race."""
        with self._derived_lock:
            if key not in self._derived:
                self._derived[key] = build()
            return self._derived[key]

    def record(self, row: int) -> dict[str, Any]:
        rec = self.catalog.row(row)
        rec["anomaly_score"] = float(self.anomaly[row])
        rec["lens_score"] = None if np.isnan(self.lens[row]) else float(self.lens[row])
        rec["quality_score"] = None if np.isnan(self.quality[row]) else float(self.quality[row])
        rec["quality_flag"] = self.quality_flag[row]
        return rec

    def vector(self, row: int) -> np.ndarray:
        v = np.asarray(self.embeddings[row], dtype=np.float32)
        return v / max(float(np.linalg.norm(v)), 1e-12)

    @property
    def survey(self) -> NativeSurvey:
        if self._survey is None:
            self._survey = NativeSurvey(self._survey_root)
            if len(self._survey) != len(self):
                raise ArtifactMismatch(f"survey at {self._survey_root} has {len(self._survey)} objects, "
                                       f"version has {len(self)}")
        return self._survey

    def images(self, rows: np.ndarray | list[int]) -> np.ndarray:
        return self.survey.images(rows)

    # ---- search
    def filter_mask(self, f: Filters) -> np.ndarray | None:
        if not f.active:
            return None
        mask = np.ones(len(self), dtype=bool)
        if f.z_min is not None or f.z_max is not None:
            z = np.asarray(self._column(self.redshift_column), dtype=np.float64)
            if f.z_min is not None:
                mask &= z >= f.z_min
            if f.z_max is not None:
                mask &= z <= f.z_max
        if f.mag_max is not None:
            mask &= np.asarray(self._column(self.magnitude_column), dtype=np.float64) <= f.mag_max
        if f.radius_deg is not None:
            if f.ra_deg is None or f.dec_deg is None:
                raise ValueError("a sky-region filter needs ra, dec and radius")
            mask &= self.cone_mask(f.ra_deg, f.dec_deg, f.radius_deg)
        return mask

    def _column(self, name: str) -> np.ndarray:
        if name not in self.catalog:
            raise ValueError(f"this survey's catalog has no column {name!r} to filter on")
        return self.catalog[name]

    def cone_rows(self, ra_deg: float, dec_deg: float, radius_deg: float) -> tuple[np.ndarray, np.ndarray]:
        """(rows, separations in deg) of objects within radius, nearest first (HEALPix pre-selection)."""
        cand = self._cone_candidates(ra_deg, dec_deg, radius_deg)
        if not len(cand):
            return cand, np.empty(0)
        centre = SkyCoord(ra_deg * u.deg, dec_deg * u.deg)
        sep = centre.separation(SkyCoord(self.catalog["ra"][cand] * u.deg, self.catalog["dec"][cand] * u.deg)).deg
        keep = sep <= radius_deg
        order = np.argsort(sep[keep], kind="stable")
        return cand[keep][order], sep[keep][order]

    def _cone_candidates(self, ra_deg: float, dec_deg: float, radius_deg: float) -> np.ndarray:
        """Rows in HEALPix pixels that overlap the cone (a superset of the answer).

        astropy_healpix's cone search slows down sharply with the number of pixels it returns
        (~0.03 s for 1.6k pixels, minutes for a hemisphere at nside 256), so wide cones are
        searched at a coarser level of the nested scheme: the parent of pixel p, j levels up, is
        p >> 2j. Cones of radius >= CONE_ALL_ROWS_DEG just take every row.
        """
        cone = self._cone_pixels(ra_deg, dec_deg, radius_deg)
        if cone is None:
            return np.nonzero(self.has_position)[0]
        pix, shift = cone
        cand = np.nonzero(np.isin(np.asarray(self.catalog["healpix"]) >> shift, pix))[0]
        return cand[self.has_position[cand]]  # healpix is -1 for them already; old versions may differ

    def _cone_pixels(self, ra_deg: float, dec_deg: float, radius_deg: float) -> tuple[np.ndarray, int] | None:
        """(nested pixels, bits coarser than the catalogue's level) overlapping the cone, or None for
        a cone so wide that every positioned row is a candidate."""
        if radius_deg >= CONE_ALL_ROWS_DEG:
            return None
        nside, shift = self.healpix.nside, 0
        while nside > 1 and math.pi * radius_deg**2 > CONE_MAX_PIXELS * (41252.96 / (12 * nside**2)):
            nside, shift = nside // 2, shift + 2
        hp = self.healpix if shift == 0 else HEALPix(nside=nside, order="nested")
        return np.asarray(hp.cone_search_lonlat(ra_deg * u.deg, dec_deg * u.deg, radius_deg * u.deg)), shift

    def cone_mask(self, ra_deg: float, dec_deg: float, radius_deg: float) -> np.ndarray:
        mask = np.zeros(len(self), dtype=bool)
        mask[self.cone_rows(ra_deg, dec_deg, radius_deg)[0]] = True
        return mask

    def nearest_object(self, ra_deg: float, dec_deg: float) -> tuple[int, float]:
        """(row, separation in arcsec) of the catalogued object closest to a position (objects of
        unknown position left out); UnknownObject when no object has a position.

        astropy's catalogue matching against the version's positioned objects as unit vectors,
        kept with the version (`derived`): the KD-tree is built on first use (0.7 s at 10^6 objects)
        and a lookup then takes ~2 ms. `match_to_catalog_3d` on unit vectors rather than
        `match_to_catalog_sky`, which re-derives the whole catalogue's unit vectors on every call
        (40 ms per lookup at 10^6); the nearest unit vector is the nearest on the sky, and the
        separation is the on-sky angle either way.
        """
        def positioned() -> tuple[np.ndarray, SkyCoord | None]:
            known = np.nonzero(self.has_position)[0]
            sky = SkyCoord(self.catalog["ra"][known] * u.deg, self.catalog["dec"][known] * u.deg)
            return known, SkyCoord(sky.cartesian, frame="icrs") if len(known) else None

        known, catalogue = self.derived(("nearest_object",), positioned)
        if catalogue is None:
            raise UnknownObject(f"any object with a known position (near ra={ra_deg}, dec={dec_deg})")
        i, sep, _ = SkyCoord(ra_deg * u.deg, dec_deg * u.deg).match_to_catalog_3d(catalogue)
        return int(known[int(np.ravel(i)[0])]), float(np.ravel(sep.arcsec)[0])

    def search_vector(self, vector: np.ndarray, k: int, filters: Filters | None = None,
                      exclude: set[int] | None = None) -> list[Neighbour]:
        """k nearest rows to a unit vector, satisfying filters, nearest first. Returns fewer than k
        only when fewer than k objects pass the filters (minus `exclude`).

        An engine that filters itself (Milvus) gets the filters as an expression and is asked for
        k + excluded hits; every hit is still checked against the exact mask."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        q = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        filters = filters or Filters()
        mask = self.filter_mask(filters)
        exclude = exclude or set()
        n_pass = len(self) if mask is None else int(mask.sum())
        pushdown = mask is not None and self.searcher.supports_filter
        if mask is not None and (n_pass == 0 or (n_pass <= EXACT_SUBSET_MAX and not pushdown)):
            return self._scan(q[0], np.nonzero(mask)[0], k, exclude)
        where = self._where(filters) if pushdown else ""
        fetch = min(len(self), k + len(exclude))
        if mask is not None and not pushdown:
            fetch = min(len(self), math.ceil((k + len(exclude)) * len(self) / max(n_pass, 1) * OVERFETCH_MARGIN))
            if fetch > OVERFETCH_MAX:  # so selective that the index would have to return too much
                return self._scan(q[0], np.nonzero(mask)[0], k, exclude)
        ceiling = min(OVERFETCH_MAX, self.searcher.max_k)
        while True:
            dist, ids = self.searcher.search(q, min(fetch, self.searcher.max_k), where)
            out = [self._neighbour(int(i), float(d)) for d, i in zip(dist[0], ids[0], strict=True)
                   if i >= 0 and int(i) not in exclude and (mask is None or mask[i])]
            exhausted = fetch >= len(self) or bool((ids[0] < 0).any())
            if len(out) >= k or (mask is None and (exhausted or fetch >= self.searcher.max_k)):
                return out[:k]  # unfiltered: the index's answer
            if mask is not None and (exhausted or fetch >= ceiling):
                if pushdown and exhausted and len(out) >= n_pass - sum(1 for r in exclude if mask[r]):
                    return out  # the engine returned every object that passes
                return self._scan(q[0], np.nonzero(mask)[0], k, exclude)
            fetch = min(len(self), fetch * 4)

    def search_batch(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Unfiltered k nearest rows of many unit vectors at once: (1 - cosine, rows), as
        `index_types.search` answers (evaluation's retrieval metrics)."""
        return self.searcher.search(np.asarray(queries, dtype=np.float32), k)

    def _where(self, f: Filters) -> str:
        """The filters as the engine's expression; a cone as the HEALPix ranges of its candidates."""
        ranges = None
        if f.radius_deg is not None and f.ra_deg is not None and f.dec_deg is not None:
            cone = self._cone_pixels(f.ra_deg, f.dec_deg, f.radius_deg)
            ranges = [(0, 12 * self.healpix.nside**2)] if cone is None else healpix_ranges(*cone)
        return filter_expression(f.z_min, f.z_max, f.mag_max, ranges)

    def _scan(self, q: np.ndarray, rows: np.ndarray, k: int, exclude: set[int]) -> list[Neighbour]:
        """Exact top-k over `rows` in blocks: cosine on re-normalised vectors, ties by row."""
        if exclude:
            rows = rows[~np.isin(rows, np.fromiter(exclude, dtype=np.int64, count=len(exclude)))]
        best_rows, best_sims = np.empty(0, np.int64), np.empty(0, np.float32)
        for start in range(0, len(rows), SCAN_BLOCK):
            block = rows[start : start + SCAN_BLOCK]
            v = np.asarray(self.embeddings[block], dtype=np.float32)
            sims = (v @ q) / np.linalg.norm(v, axis=1).clip(1e-12)
            if len(block) > k:
                top = np.argpartition(-sims, k - 1)[:k]
                block, sims = block[top], sims[top]
            best_rows, best_sims = np.concatenate([best_rows, block]), np.concatenate([best_sims, sims])
        order = np.lexsort((best_rows, -best_sims))[:k]
        return [self._neighbour(int(best_rows[i]), 1.0 - float(best_sims[i])) for i in order]

    def similar(self, object_id: str, k: int, filters: Filters | None = None) -> list[Neighbour]:
        """The object itself (distance ~0) when it passes the filters, then its nearest neighbours."""
        return self.search_vector(self.vector(self.row_of(object_id)), k, filters)

    def _neighbour(self, row: int, distance: float) -> Neighbour:
        return Neighbour(row, str(self.catalog["object_id"][row]), max(0.0, distance))


__all__ = ["Filters", "IndexedSurvey", "Neighbour", "UnknownObject"]
