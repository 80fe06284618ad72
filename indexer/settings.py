"""IndexSettings: one object for `skysift encode|index|publish`, recorded in the manifest."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class IndexSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SKYSIFT_INDEX_", extra="forbid")

    survey: Path = Path("data/sim")
    encoder: Path = Path("runs/train/encoder")
    artifacts: Path = Path("artifacts")
    job: str = "default"  # building/<job>/; re-running the same job resumes it
    shard_size: int = 4096  # objects per embedding shard (the unit of resumption)
    batch_size: int = 256
    device: str = "auto"
    index_factory: str | None = None  # None: chosen by size (indexer.index_types.choose_index)
    memory_budget_bytes: int | None = None
    recall_sample: int = 1000
    anomaly_k: int = 10
    lens_labels: Path | None = None  # CSV with an object_id column: known lenses
    healpix_nside: int = 256  # 13.7 arcmin pixels for cone search
    redshift_column: str = "z"
    magnitude_column: str = "mag_r"
    seed: int = 0
