"""A job notices change: pixels re-ingested under the same ids, other settings or weights make a re-run
encode again from scratch (one line says why), never reuse; an unchanged survey is never re-encoded
and, once its files are old enough to trust their mtimes, not even re-hashed."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import indexer.encode
from indexer.artifacts import current_dir
from indexer.encode import encode_survey, gather_embeddings, read_plan, shard_paths
from indexer.errors import ArtifactMismatch
from indexer.store import IndexedSurvey
from survey.native import NativeSurvey, write_shard

SHARD = 64  # 240 objects -> 4 embedding shards; the survey has 3 files of 100, 100, 40 objects


class Stop(Exception):
    pass


@pytest.fixture()
def survey(tiny_survey: Path, tmp_path: Path) -> Path:
    """A copy of the tiny survey whose files are 10 s old (their mtimes can be trusted at once)."""
    out = tmp_path / "survey"
    shutil.copytree(tiny_survey, out)
    old = time.time() - 10
    for p in out.glob("shard-*.h5"):
        os.utime(p, (old, old))
    return out


def reingest(survey: Path, name: str = "shard-00000.h5") -> None:
    """Rewrite one survey file with other pixels under the same ids (each object gets its neighbour's)."""
    path = survey / name
    one = NativeSurvey(path)
    images = one.images(np.arange(len(one)))
    units = one.units
    one.close()
    write_shard(path, np.roll(images, 1, axis=0), one.catalog, one.bands, one.pixel_scale_arcsec, one.survey_name,
                units=units)


def mtimes(job: Path) -> dict[int, int]:
    return {k: shard_paths(job, k)[0].stat().st_mtime_ns for k in range(4)}


def encode(survey: Path, tiny_encoder: Path, job: Path, **kw) -> tuple[list[int], list[str]]:
    said: list[str] = []
    done = encode_survey(survey, tiny_encoder, job, shard_size=kw.pop("shard_size", SHARD), log=said.append, **kw)
    return done, said


def test_reingested_pixels_are_encoded_again_and_match_a_fresh_job(survey: Path, tiny_encoder: Path,
                                                                   tmp_path: Path) -> None:
    job = tmp_path / "job"
    assert encode(survey, tiny_encoder, job) == ([0, 1, 2, 3], [])
    old = gather_embeddings(job).astype(np.float32)
    assert encode(survey, tiny_encoder, job) == ([], [])  # unchanged: all reused

    reingest(survey)
    done, said = encode(survey, tiny_encoder, job)
    assert done == [0, 1, 2, 3] and len(said) == 1, said
    assert said[0].startswith("survey pixels changed since this job's embeddings were made (shard-00000.h5)")
    assert "re-encoding all 240 objects" in said[0]
    new = gather_embeddings(job).astype(np.float32)
    assert np.abs(new[:100] - old[:100]).max() > 0.1  # the rolled objects have other embeddings now

    assert encode(survey, tiny_encoder, tmp_path / "fresh")[0] == [0, 1, 2, 3]
    np.testing.assert_array_equal(new, gather_embeddings(tmp_path / "fresh").astype(np.float32))
    before = mtimes(job)
    assert encode(survey, tiny_encoder, job) == ([], [])  # and now that is reused in turn
    assert mtimes(job) == before


def test_unchanged_files_are_not_rehashed_and_touched_ones_not_reencoded(survey: Path, tiny_encoder: Path,
                                                                         tmp_path: Path, monkeypatch) -> None:
    job = tmp_path / "job"
    encode(survey, tiny_encoder, job)
    hashed: list[str] = []
    real = indexer.encode.file_sha256
    monkeypatch.setattr(indexer.encode, "file_sha256", lambda p: hashed.append(Path(p).name) or real(p))
    before = mtimes(job)
    assert encode(survey, tiny_encoder, job) == ([], []) and hashed == []  # name, size, mtime as recorded

    os.utime(survey / "shard-00001.h5")  # touched: same bytes, new mtime
    assert encode(survey, tiny_encoder, job) == ([], []) and hashed == ["shard-00001.h5"]
    assert mtimes(job) == before
    recorded = {f["name"]: f["mtime_ns"] for f in read_plan(job)["survey"]}
    assert recorded["shard-00001.h5"] == (survey / "shard-00001.h5").stat().st_mtime_ns


def test_other_settings_or_weights_re_encode_naming_what_changed(survey: Path, tiny_encoder: Path,
                                                                 tmp_path: Path) -> None:
    job = tmp_path / "job"
    encode(survey, tiny_encoder, job, batch_size=32)
    assert encode(survey, tiny_encoder, job, batch_size=100) == ([], [])  # the batch size changes nothing

    done, said = encode(survey, tiny_encoder, job, shard_size=SHARD * 2)
    assert done == [0, 1] and said and "shard size changed (64 -> 128)" in said[0]
    assert not shard_paths(job, 2)[0].exists()  # the old plan's shards past the new count are gone
    assert len(gather_embeddings(job)) == 240

    done, said = encode(survey, tiny_encoder, job, shard_size=SHARD * 2, precision="bf16")
    assert done == [0, 1] and "precision changed (fp32 -> bf16)" in said[0]

    plan = json.loads((job / "plan.json").read_text())
    (job / "plan.json").write_text(json.dumps({**plan, "weights_sha256": "0" * 64}))
    done, said = encode(survey, tiny_encoder, job, shard_size=SHARD * 2, precision="bf16")
    assert done == [0, 1] and said[0].startswith("the encoder's weights changed")


def test_a_job_from_before_fingerprints_is_encoded_again(survey: Path, tiny_encoder: Path, tmp_path: Path) -> None:
    job = tmp_path / "job"
    encode(survey, tiny_encoder, job)
    plan = read_plan(job)
    legacy = {k: plan[k] for k in ("n_objects", "shard_size", "weights_sha256", "catalog_sha256")}
    (job / "plan.json").write_text(json.dumps(legacy))
    for k in range(4):
        shard_paths(job, k)[1].write_text(json.dumps({"rows": [k * SHARD, min((k + 1) * SHARD, 240)]}))
    assert len(gather_embeddings(job)) == 240  # a finished old job still gathers (build alone)
    done, said = encode(survey, tiny_encoder, job)
    assert done == [0, 1, 2, 3] and "predates the fingerprints" in said[0]


def test_killed_while_changing_plans_never_revives_a_stale_shard(survey: Path, tiny_encoder: Path,
                                                                 tmp_path: Path, monkeypatch) -> None:
    job = tmp_path / "job"
    encode(survey, tiny_encoder, job)
    reingest(survey)

    # killed before the new plan is written: the next run sees the same change
    def die(_: str) -> None:
        raise Stop

    with pytest.raises(Stop):
        encode_survey(survey, tiny_encoder, job, shard_size=SHARD, log=die)

    # killed right after it, the stale shards still on disk: they name the old plan, so they are not done
    real = indexer.encode.crash_point

    def crash(name: str) -> None:
        if name == "encode.new_plan":
            raise Stop
        real(name)

    monkeypatch.setattr(indexer.encode, "crash_point", crash)
    with pytest.raises(Stop):
        encode(survey, tiny_encoder, job)
    assert all(shard_paths(job, k)[1].exists() for k in range(4))  # stale markers left behind
    with pytest.raises(ArtifactMismatch, match="4 of 4 shards not encoded yet"):
        gather_embeddings(job)
    monkeypatch.setattr(indexer.encode, "crash_point", real)
    assert encode(survey, tiny_encoder, job) == ([0, 1, 2, 3], [])  # the plan is already the new one

    assert encode(survey, tiny_encoder, tmp_path / "fresh")[0] == [0, 1, 2, 3]
    np.testing.assert_array_equal(gather_embeddings(job), gather_embeddings(tmp_path / "fresh"))


def test_skysift_index_with_the_same_job_after_reingest_publishes_new_embeddings(survey: Path, tiny_encoder: Path,
                                                                                 tmp_path: Path) -> None:
    from skysift.cli import cli

    root = tmp_path / "artifacts"
    args = ["index", "--survey", str(survey), "--encoder", str(tiny_encoder), "--artifacts", str(root),
            "--job", "same", "--shard-size", str(SHARD), "--device", "cpu", "--map-method", "pca"]
    r = CliRunner().invoke(cli, args, env={"COLUMNS": "400"})
    assert r.exit_code == 0, r.output
    first = np.asarray(IndexedSurvey(current_dir(root)).embeddings, np.float32)

    reingest(survey)
    r = CliRunner().invoke(cli, args, env={"COLUMNS": "400"})
    assert r.exit_code == 0, r.output
    assert "survey pixels changed since this job's embeddings were made (shard-00000.h5)" in r.output
    published = np.asarray(IndexedSurvey(current_dir(root)).embeddings, np.float32)
    assert np.abs(published[:100] - first[:100]).max() > 0.1
    encode_survey(survey, tiny_encoder, tmp_path / "fresh", shard_size=SHARD)
    np.testing.assert_array_equal(published, gather_embeddings(tmp_path / "fresh").astype(np.float32))


def test_a_new_readout_re_encodes_and_plain_plans_keep_their_old_key(survey: Path, tiny_encoder: Path,
                                                                     tmp_path: Path) -> None:
    job = tmp_path / "job"
    encode(survey, tiny_encoder, job)
    assert "readout" not in read_plan(job)  # plain, as before readouts: jobs planned then keep their key
    plain = gather_embeddings(job).astype(np.float32)

    turned = tmp_path / "encoder"
    shutil.copytree(tiny_encoder, turned)
    card = json.loads((turned / "model.json").read_text())
    (turned / "model.json").write_text(json.dumps({**card, "readout": "dihedral8"}))
    done, said = encode(survey, turned, job)
    assert done == [0, 1, 2, 3] and said[0].startswith("the encoder's readout changed (plain -> dihedral8)")
    assert read_plan(job)["readout"] == "dihedral8"
    assert np.abs(gather_embeddings(job).astype(np.float32) - plain).max() > 0.01
    assert encode(survey, turned, job) == ([], [])


def test_smoothing_re_encodes_and_aligned4_is_named_once_as_a_readout(survey: Path, tiny_encoder: Path,
                                                                      tmp_path: Path) -> None:
    job = tmp_path / "job"
    encode(survey, tiny_encoder, job)
    key = read_plan(job)["key"]
    card = json.loads((tiny_encoder / "model.json").read_text())
    # a card written before `align` and `smooth_px` existed plans the same job: no re-encoding
    older = tmp_path / "older"
    shutil.copytree(tiny_encoder, older)
    pre = {k: v for k, v in card["preprocess"].items() if k not in ("align", "smooth_px")}
    (older / "model.json").write_text(json.dumps({**card, "preprocess": pre}))
    assert encode(survey, older, job) == ([], []) and read_plan(job)["key"] == key

    smoothed = tmp_path / "smoothed"
    shutil.copytree(tiny_encoder, smoothed)
    (smoothed / "model.json").write_text(json.dumps({**card, "preprocess": {**card["preprocess"], "smooth_px": 1.0}}))
    done, said = encode(survey, smoothed, job)
    assert done == [0, 1, 2, 3] and len(said) == 1
    assert said[0].startswith("the encoder's preprocessing changed (its model card, or the units the survey records);")
    aligned = tmp_path / "aligned"
    shutil.copytree(smoothed, aligned)
    (aligned / "model.json").write_text(json.dumps({**json.loads((smoothed / "model.json").read_text()),
                                                    "readout": "aligned4"}))
    done, said = encode(survey, aligned, job)
    assert done == [0, 1, 2, 3] and len(said) == 1 and said[0].startswith("the encoder's readout changed "
                                                                          "(plain -> aligned4);")
