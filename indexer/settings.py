"""IndexSettings: one object for `skysift encode|index|publish`, recorded in the manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .projection import default_method


class IndexSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SKYSIFT_INDEX_", extra="forbid")

    survey: Path = Path("data/sim")
    encoder: Path = Path("runs/train/encoder")
    artifacts: Path = Path("artifacts")
    job: str = "default"  # building/<job>/; re-running the same job resumes it
    shard_size: int = Field(default=4096, ge=1)  # objects per embedding shard (the unit of resumption)
    batch_size: int = Field(default=256, ge=1)
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    workers: int = Field(default=0, ge=0)  # reader processes; 0 = one background reader thread
    prefetch: int = Field(default=2, ge=1)  # batches read ahead (per worker)
    index_factory: str | None = None  # None: chosen by size (indexer.index_types.choose_index)
    # Also serve from Milvus (indexer.milvus_backend): the version becomes a collection at milvus_uri
    # (a server URL, or a Milvus Lite file ending in .db) and publish/rollback switch milvus_alias to it.
    backend: Literal["faiss", "milvus"] = "faiss"
    milvus_uri: str | None = None
    milvus_alias: str = "skysift_current"
    milvus_index: Literal["auto", "FLAT", "HNSW", "IVF_FLAT"] = "auto"  # auto: FLAT below 10^5 objects, HNSW above
    memory_budget_bytes: int | None = None
    # Where the FAISS index lives: "auto" keeps it in memory up to index_types.ONDISK_MIN_N objects and
    # puts IVF-PQ lists on disk past it (indexer.ondisk: <= 64 B/object of RAM, float16 re-rank);
    # "ondisk" forces that at any size. index_processes fill its shards in parallel.
    index_storage: Literal["auto", "memory", "ondisk"] = "auto"
    index_processes: int = Field(default=1, ge=1)
    recall_sample: int = 1000
    anomaly_k: int = Field(default=10, ge=1)
    anomaly_method: Literal["mean", "kth", "lof"] = "lof"  # best AUROC on simulated truth: docs/indexing.md
    lens_labels: Path | None = None  # CSV with an object_id column: known lenses
    healpix_nside: int = 256  # 13.7 arcmin pixels for cone search
    redshift_column: str = "z"
    magnitude_column: str = "mag_r"
    # 2-D map for the explorer (map.npy): UMAP when umap-learn is installed, else PCA. Surveys
    # smaller than map_umap_min_objects get PCA: a few hundred points do not repay UMAP's ~1 min
    # of numba compilation. Beyond map_fit_max the map is fitted on a seeded sample.
    map_method: Literal["umap", "pca"] = Field(default_factory=default_method)
    map_umap_min_objects: int = Field(default=1000, ge=0)
    map_fit_max: int = Field(default=200_000, ge=2)
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> IndexSettings:
        if self.recall_sample < 1:
            raise ValueError("recall_sample must be >= 1")
        if self.backend == "milvus" and not self.milvus_uri:
            raise ValueError("backend milvus needs a Milvus URI: pass --milvus-uri http://host:19530 "
                             "(or a Milvus Lite file ending in .db)")
        if self.milvus_uri:  # refused now, not after hours of encoding
            from .milvus_backend import check_uri

            check_uri(self.milvus_uri)
        return self
