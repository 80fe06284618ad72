"""Publishing validates before it swaps; rollback and removal; `skysift versions` output."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from indexer import artifacts
from indexer.artifacts import current_version, list_versions, publish, read_manifest, write_manifest
from indexer.build import build_version
from indexer.errors import ArtifactError, ArtifactMismatch
from indexer.settings import IndexSettings
from indexer.store import IndexedSurvey


@pytest.fixture()
def root_and_job(tiny_survey: Path, tiny_encoder: Path, tiny_artifacts: Path, tmp_path: Path):
    """A fresh artifacts root holding a copy of the tiny version (current) and of its encoded job."""
    root = tmp_path / "artifacts"
    shutil.copytree(tiny_artifacts / "versions", root / "versions")
    os.symlink(Path("versions") / current_version(tiny_artifacts), root / "current")
    shutil.copytree(tiny_artifacts / "building" / "tiny", root / "building" / "tiny",
                    ignore=shutil.ignore_patterns("stage*"))
    s = IndexSettings(survey=tiny_survey, encoder=tiny_encoder, artifacts=root, job="tiny", shard_size=64,
                      device="cpu", recall_sample=50, map_method="pca")
    return root, s


def stage_of(s: IndexSettings) -> Path:
    return build_version(s, Path(s.artifacts) / "building" / s.job)


def test_tampered_file_is_refused_and_current_stays(root_and_job) -> None:
    root, s = root_and_job
    before = current_version(root)
    stage = stage_of(s)
    emb = stage / "embeddings.npy"
    data = bytearray(emb.read_bytes())
    data[-1] ^= 0xFF  # same size, other content
    emb.write_bytes(bytes(data))
    with pytest.raises(ArtifactMismatch, match="embeddings.npy does not match its sha256"):
        publish(root, stage)
    assert current_version(root) == before
    assert stage.exists() and len(list_versions(root)) == 1


def test_missing_file_and_wrong_counts_are_refused(root_and_job) -> None:
    root, s = root_and_job
    before = current_version(root)
    stage = stage_of(s)
    (stage / "map.npy").unlink()
    with pytest.raises(ArtifactMismatch, match="map.npy listed in the manifest is missing"):
        publish(root, stage)
    stage = stage_of(s)  # rebuilt from the same shards
    scores = pq.read_table(stage / "scores.parquet")
    pq.write_table(scores.slice(0, scores.num_rows - 1), stage / "scores.parquet")
    manifest = read_manifest(stage)
    write_manifest(stage, {k: v for k, v in manifest.items() if k != "files"})  # hashes now agree
    with pytest.raises(ArtifactMismatch, match="scores.parquet"):
        publish(root, stage)
    assert current_version(root) == before


def test_publish_rollback_remove(root_and_job) -> None:
    root, s = root_and_job
    v0 = current_version(root)
    v1 = publish(root, stage_of(s))
    assert current_version(root) == v1 != v0
    store = IndexedSurvey.open_current(root)
    assert store.version == v1 and store.map_xy is not None and store.map_xy.shape == (len(store), 2)
    assert [v["version"] for v in list_versions(root)] == sorted([v0, v1])
    assert [v["current"] for v in list_versions(root)] == [False, True]

    with pytest.raises(ArtifactError, match="is current"):
        artifacts.remove_version(root, v1)
    assert artifacts.rollback(root) == v0 and current_version(root) == v0
    with pytest.raises(ArtifactError, match="no version older"):
        artifacts.rollback(root)
    assert artifacts.rollback(root, to=v1) == v1
    with pytest.raises(ArtifactError, match="no complete version"):
        artifacts.rollback(root, to="19990101T000000Z-deadbeef")
    artifacts.remove_version(root, v0)
    assert [v["version"] for v in list_versions(root)] == [v1]
    with pytest.raises(ArtifactError, match="no version"):
        artifacts.remove_version(root, v0)
    IndexedSurvey(root / "current", check_hashes=True)


def test_publish_twice_is_idempotent(root_and_job) -> None:
    root, s = root_and_job
    stage = stage_of(s)
    version = read_manifest(stage)["version"]
    twin = stage.with_name("twin")
    shutil.copytree(stage, twin)
    assert publish(root, stage) == version
    assert publish(root, twin) == version  # same bytes, same name: just points current at it
    assert current_version(root) == version and not twin.exists()


def cli() -> typer.Typer:
    from skysift.cli import cli as app  # the whole CLI: its errors end in one line (skysift/errors.py)

    return app


def test_versions_cli_lists_marks_current_and_refuses_removing_it(root_and_job) -> None:
    root, s = root_and_job
    v0 = current_version(root)
    v1 = publish(root, stage_of(s))
    runner = CliRunner()
    r = runner.invoke(cli(), ["versions", "--artifacts", str(root)], env={"COLUMNS": "120"})
    assert r.exit_code == 0, r.output
    lines = {line.split("│")[1].strip(): line for line in r.output.splitlines() if line.count("│") >= 5}
    assert set(lines) == {v0, v1}, r.output  # full version names, never truncated
    assert "*" in lines[v1] and "*" not in lines[v0]
    assert "240" in lines[v1] and "Flat" in lines[v1]

    r = runner.invoke(cli(), ["versions", "--artifacts", str(root), "--remove", v1])
    assert r.exit_code == 1 and r.stderr.startswith("skysift versions: error: ") and "is current" in r.stderr
    r = runner.invoke(cli(), ["versions", "--artifacts", str(root), "--rollback"])
    assert r.exit_code == 0 and f"current -> {v0}" in r.output
    r = runner.invoke(cli(), ["versions", "--artifacts", str(root), "--remove", v1])
    assert r.exit_code == 0 and f"removed {v1}" in r.output and current_version(root) == v0


def test_version_without_a_map_loads_with_map_xy_none(root_and_job, tmp_path: Path) -> None:
    root, _ = root_and_job
    old = tmp_path / "old"
    shutil.copytree(root / "current", old)
    (old / "map.npy").unlink()
    write_manifest(old, {k: v for k, v in read_manifest(old).items() if k not in ("files", "map")})
    store = IndexedSurvey(old, check_hashes=True)
    assert store.map_xy is None and store.map_method is None
    assert np.isfinite(store.anomaly).all()


class Killed(Exception):
    """Stands in for the SIGKILL at a crash point (tests/indexer/test_crash_safety.py sends real ones)."""


def kill_at(point: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(name: str) -> None:
        if name == point:
            raise Killed(name)

    monkeypatch.setattr(artifacts, "crash_point", crash)


def test_index_rerun_finishes_a_publish_killed_between_rename_and_swap(root_and_job, monkeypatch) -> None:
    from indexer.pipeline import index_survey

    root, s = root_and_job
    v0 = current_version(root)
    kill_at("publish.after_rename", monkeypatch)
    with pytest.raises(Killed):
        index_survey(s)
    (pending,) = {v["version"] for v in list_versions(root)} - {v0}
    assert current_version(root) == v0 and artifacts.orphans(root) == [pending]

    monkeypatch.undo()
    lines: list[str] = []
    assert index_survey(s, log=lines.append) == pending  # finished, not built again
    assert current_version(root) == pending and artifacts.orphans(root) == []
    assert [v["version"] for v in list_versions(root)] == sorted([v0, pending])
    assert any("finished the interrupted publish" in line for line in lines)
    assert not (root / "building" / s.job / "stage.publish.json").exists()
    IndexedSurvey(root / "current", check_hashes=True)


def test_pending_version_from_other_settings_is_left_as_an_orphan_and_removable(root_and_job, monkeypatch) -> None:
    from indexer.pipeline import index_survey

    root, s = root_and_job
    v0 = current_version(root)
    kill_at("publish.before_swap", monkeypatch)  # the version is logged and renamed, current not swapped
    with pytest.raises(Killed):
        index_survey(s)
    (stale,) = {v["version"] for v in list_versions(root)} - {v0}
    assert artifacts.orphans(root) == [stale]
    monkeypatch.undo()

    lines: list[str] = []
    other = s.model_copy(update={"anomaly_method": "kth"})
    v2 = index_survey(other, log=lines.append)
    assert v2 not in (v0, stale) and current_version(root) == v2
    assert any(stale in line and "other inputs" in line for line in lines)
    assert artifacts.orphans(root) == [stale]
    assert artifacts.rollback(root) == v0  # rolling back skips the orphan
    assert artifacts.point_current(root, v2) is None

    runner = CliRunner()
    r = runner.invoke(cli(), ["versions", "--artifacts", str(root)], env={"COLUMNS": "160"})
    assert r.exit_code == 0, r.output
    rows = {line.split("│")[1].strip(): line for line in r.output.splitlines() if line.count("│") >= 5}
    assert "orphan" in rows[stale] and "orphan" not in rows[v0] and "*" in rows[v2]
    assert "1 orphan(s)" in r.output
    r = runner.invoke(cli(), ["versions", "--artifacts", str(root), "--remove-orphans"], env={"COLUMNS": "160"})
    assert r.exit_code == 0 and f"removed 1 orphan(s): {stale}" in r.output, r.output
    assert [v["version"] for v in list_versions(root)] == sorted([v0, v2]) and artifacts.orphans(root) == []
    assert current_version(root) == v2


def test_orphans_left_before_the_publish_log_existed(root_and_job) -> None:
    """A root from before published.jsonl: its versions count as published, only dead intents make orphans."""
    root, s = root_and_job
    v0 = current_version(root)
    stage = stage_of(s)
    version = read_manifest(stage)["version"]
    job = root / "building" / s.job
    (job / "stage.publish.json").write_text(json.dumps({"version": version}))  # an old intent: no pid
    os.rename(stage, root / "versions" / version)
    assert not (root / artifacts.HISTORY).exists() and artifacts.orphans(root) == [version]
    assert publish(root, stage) == version  # `skysift publish` on the same stage finishes it
    assert artifacts.orphans(root) == [] and artifacts.published(root) == {v0, version}
