"""Shared fixtures: a tiny simulated survey, an encoder trained for a few steps, a published
version. Built once per session (about 15 s on two cores) and shared read-only by tests."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_SEED = 7


@pytest.fixture(scope="session")
def tiny_survey(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from survey.simulate.settings import SimSettings
    from survey.simulate.survey import simulate

    out = tmp_path_factory.mktemp("tiny") / "survey"
    # Enough lenses and artifacts that every kind shows up in a 240-object survey.
    simulate(SimSettings(out_dir=out, preset="tiny", seed=TINY_SEED, shard_size=100, lens_fraction=0.05,
                         artifact_fraction=0.05, workers=2))
    return out


@pytest.fixture(scope="session")
def tiny_encoder(tiny_survey: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.augment import AugmentSettings
    from training.loop import train
    from training.settings import TrainSettings

    run = tmp_path_factory.mktemp("run")
    s = TrainSettings(survey=tiny_survey, out_dir=run, epochs=1, max_steps=4, batch_size=32, queue_size=128,
                      backbone_kwargs={"channels": [8, 16, 32, 64], "stem_width": 8}, proj_hidden=64, proj_dim=32,
                      augment=AugmentSettings(crop_size_px=32), workers=0, monitor_size=64, device="cpu",
                      produced_by="tests/conftest.py tiny_encoder")
    return train(s)


@pytest.fixture(scope="session")
def milvus_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Milvus Lite database for the session (embedded, in this process): what `--milvus-uri`
    names in tests, as a server URL would in a deployment."""
    return str(tmp_path_factory.mktemp("milvus") / "lite.db")


@pytest.fixture(scope="session")
def tiny_artifacts(tiny_survey: Path, tiny_encoder: Path, milvus_uri: str,
                   tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny survey's published version, built with `--backend milvus`: it carries its FAISS
    index and names its Milvus collection, so every read-side test can run on either engine."""
    from indexer.pipeline import index_survey
    from indexer.settings import IndexSettings

    root = tmp_path_factory.mktemp("artifacts")
    index_survey(IndexSettings(survey=tiny_survey, encoder=tiny_encoder, artifacts=root, job="tiny", device="cpu",
                               shard_size=64, recall_sample=100, map_method="pca", backend="milvus",
                               milvus_uri=milvus_uri))
    return root
