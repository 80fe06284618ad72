"""The read side: `IndexedSurvey` answers queries from one published version.

It holds the catalog, the float16 embeddings (memory-mapped), the FAISS index, the scores and a
handle on the survey's pixels, and never changes after it is opened: the service swaps whole
`IndexedSurvey` objects when a new version is published.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

EXACT_SUBSET_MAX = 200_000  # filtered subsets up to this size are searched exactly


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


class IndexedSurvey:
    def __init__(self, version_dir: Path, survey_root: Path | None = None, check_hashes: bool = False) -> None:
        self.dir = Path(version_dir).resolve()
        self.manifest = validate(self.dir, check_hashes=check_hashes) if check_hashes else read_manifest(self.dir)
        m = self.manifest
        self.version: str = m["version"]
        self.catalog = Catalog.from_arrow(pq.read_table(self.dir / "catalog.parquet"))
        self.embeddings = np.load(self.dir / "embeddings.npy", mmap_mode="r")
        if len(self.catalog) != m["n_objects"] or self.embeddings.shape != (m["n_objects"], m["embedding_dim"]):
            raise ArtifactMismatch(f"{self.dir}: catalog/embeddings sizes disagree with the manifest")
        self.spec = index_types.IndexSpec.from_json({k: m["index"][k] for k in ("factory", "metric", "search_params", "train_size")})
        self.index = index_types.load_index(self.dir / "index.faiss", self.spec)
        scores = pq.read_table(self.dir / "scores.parquet")
        self.anomaly = scores.column("anomaly_score").to_numpy()
        self.lens = scores.column("lens_score").to_numpy()
        self.redshift_column = m.get("columns", {}).get("redshift", "z")
        self.magnitude_column = m.get("columns", {}).get("magnitude", "mag_r")
        hp = m.get("healpix", {"nside": 256})
        self.healpix = HEALPix(nside=hp["nside"], order="nested")
        self._survey_root = Path(survey_root) if survey_root else Path(m["survey"]["path"])
        self._survey: NativeSurvey | None = None
        self.bands = tuple(m["survey"]["bands"])
        self.pixel_scale_arcsec = float(m["survey"]["pixel_scale_arcsec"])

    @classmethod
    def open_current(cls, root: Path, survey_root: Path | None = None) -> IndexedSurvey:
        return cls(current_dir(root), survey_root)

    def __len__(self) -> int:
        return len(self.catalog)

    @property
    def encoder_dir(self) -> Path:
        return self.dir / "encoder"

    @property
    def weights_sha256(self) -> str:
        return self.manifest["encoder"]["weights_sha256"]

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

    def record(self, row: int) -> dict[str, Any]:
        rec = self.catalog.row(row)
        rec["anomaly_score"] = float(self.anomaly[row])
        rec["lens_score"] = None if np.isnan(self.lens[row]) else float(self.lens[row])
        return rec

    def vector(self, row: int) -> np.ndarray:
        v = np.asarray(self.embeddings[row], dtype=np.float32)
        return v / max(float(np.linalg.norm(v)), 1e-12)

    @property
    def survey(self) -> NativeSurvey:
        if self._survey is None:
            self._survey = NativeSurvey(self._survey_root)
            if len(self._survey) != len(self):
                raise ArtifactMismatch(f"survey at {self._survey_root} has {len(self._survey)} objects, version has {len(self)}")
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
        pix = self.healpix.cone_search_lonlat(ra_deg * u.deg, dec_deg * u.deg, radius_deg * u.deg)
        cand = np.nonzero(np.isin(self.catalog["healpix"], pix))[0]
        if not len(cand):
            return cand, np.empty(0)
        centre = SkyCoord(ra_deg * u.deg, dec_deg * u.deg)
        sep = centre.separation(SkyCoord(self.catalog["ra"][cand] * u.deg, self.catalog["dec"][cand] * u.deg)).deg
        keep = sep <= radius_deg
        order = np.argsort(sep[keep])
        return cand[keep][order], sep[keep][order]

    def cone_mask(self, ra_deg: float, dec_deg: float, radius_deg: float) -> np.ndarray:
        mask = np.zeros(len(self), dtype=bool)
        mask[self.cone_rows(ra_deg, dec_deg, radius_deg)[0]] = True
        return mask

    def nearest_object(self, ra_deg: float, dec_deg: float) -> tuple[int, float]:
        """(row, separation in arcsec) of the catalogued object closest to a position."""
        centre = SkyCoord(ra_deg * u.deg, dec_deg * u.deg)
        for radius in (0.01, 0.1, 1.0, 10.0, 180.0):
            rows, sep = self.cone_rows(ra_deg, dec_deg, radius)
            if len(rows):
                return int(rows[0]), float(sep[0] * 3600)
        sep_all = centre.separation(SkyCoord(self.catalog["ra"] * u.deg, self.catalog["dec"] * u.deg)).deg
        i = int(np.argmin(sep_all))
        return i, float(sep_all[i] * 3600)

    def search_vector(self, vector: np.ndarray, k: int, filters: Filters | None = None,
                      exclude: set[int] | None = None) -> list[Neighbour]:
        """k nearest rows to a unit vector, satisfying filters. Returns fewer than k only when
        fewer than k objects pass the filters."""
        q = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        mask = self.filter_mask(filters or Filters())
        exclude = exclude or set()
        if mask is not None and mask.sum() <= EXACT_SUBSET_MAX:
            rows = np.nonzero(mask)[0]
            if exclude:
                rows = rows[~np.isin(rows, list(exclude))]
            sims = np.asarray(self.embeddings[rows], dtype=np.float32) @ q[0]
            top = np.argsort(-sims, kind="stable")[:k]
            return [self._neighbour(int(rows[i]), 1.0 - float(sims[i])) for i in top]
        fetch = k + len(exclude)
        while True:
            fetch = min(fetch, len(self))
            dist, ids = index_types.search(self.index, q, fetch)
            out = [self._neighbour(int(i), float(d)) for d, i in zip(dist[0], ids[0], strict=True)
                   if i >= 0 and int(i) not in exclude and (mask is None or mask[i])]
            if len(out) >= k or fetch >= len(self):
                return out[:k]
            fetch *= 4

    def similar(self, object_id: str, k: int, filters: Filters | None = None) -> list[Neighbour]:
        """The object itself (distance ~0) when it passes the filters, then its nearest neighbours."""
        return self.search_vector(self.vector(self.row_of(object_id)), k, filters)

    def _neighbour(self, row: int, distance: float) -> Neighbour:
        return Neighbour(row, str(self.catalog["object_id"][row]), max(0.0, distance))


__all__ = ["Filters", "IndexedSurvey", "Neighbour", "UnknownObject"]
