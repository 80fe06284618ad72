"""Build the fixed published version that tests/app/test_recorded_responses.py serves.

    .venv/bin/python tests/data/recorded_version/make_version.py   # replaces tests/data/recorded_version/artifacts

Run once (PROVENANCE.md): the tiny simulated survey of tests/conftest.py, its four-step encoder and
a version indexed with six of its lenses as known lenses (so the lens ranking has scores). Training
is not bit-reproducible across machines, which is why the version is committed rather than rebuilt
by the test. Only the version is kept (about 1 MB): the survey's pixels (11 MB) are not, so the
recording leaves out the cutout images. After running it, re-record the answers with
`SKYSIFT_RECORD=1 pytest tests/app/test_recorded_responses.py`.
"""

from __future__ import annotations

import csv
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/conftest.py: the tiny survey's seed

from conftest import TINY_SEED  # noqa: E402


def main() -> None:
    from indexer.pipeline import index_survey
    from indexer.settings import IndexSettings
    from survey.native import NativeSurvey
    from survey.simulate.settings import SimSettings
    from survey.simulate.survey import simulate
    from training.augment import AugmentSettings
    from training.loop import train
    from training.settings import TrainSettings

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        survey = work / "survey"
        # the settings of tests/conftest.py's tiny_survey and tiny_encoder fixtures
        simulate(SimSettings(out_dir=survey, preset="tiny", seed=TINY_SEED, shard_size=100, lens_fraction=0.05,
                             artifact_fraction=0.05, workers=2))
        encoder = train(TrainSettings(
            survey=survey, out_dir=work / "run", epochs=1, max_steps=4, batch_size=32, queue_size=128,
            backbone_kwargs={"channels": [8, 16, 32, 64], "stem_width": 8}, proj_hidden=64, proj_dim=32,
            augment=AugmentSettings(crop_size_px=32), workers=0, monitor_size=64, device="cpu",
            produced_by="tests/data/recorded_version/make_version.py"))
        cat = NativeSurvey(survey).catalog
        seeds = np.asarray(cat["object_id"])[np.asarray(cat["class"]) == "lens"][:6]
        labels = work / "known_lenses.csv"
        with open(labels, "w", newline="") as f:
            csv.writer(f).writerows([["object_id"], *[[s] for s in seeds]])
        artifacts = work / "artifacts"
        version = index_survey(IndexSettings(survey=survey, encoder=encoder, artifacts=artifacts, job="recorded",
                                             device="cpu", shard_size=64, recall_sample=100, map_method="pca",
                                             lens_labels=labels, backend="faiss"))
        out = HERE / "artifacts"
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(artifacts / "versions" / version, out / "versions" / version)
        (out / "current").symlink_to(Path("versions") / version)
    print(f"wrote {out} (version {version})")


if __name__ == "__main__":
    main()
