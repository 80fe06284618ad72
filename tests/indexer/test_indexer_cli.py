"""indexer/cli.py: `skysift versions` on a path that is not an artifacts root is a named error
(exit 1), and the encode progress bar shows rates to 3 significant figures, '–' before it has one."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.progress import Progress
from typer.testing import CliRunner

from indexer.cli import RateColumn, three_figures
from skysift.cli import cli


@pytest.mark.parametrize("make", ["missing", "file", "other folder"])
def test_versions_on_a_bad_path_is_one_line_exit_1(make: str, tmp_path: Path) -> None:
    path = tmp_path / "x"
    if make == "file":
        path.write_text("not a folder")
    elif make == "other folder":
        (path / "data").mkdir(parents=True)
    r = CliRunner().invoke(cli, ["versions", "--artifacts", str(path)])
    lines = r.stderr.splitlines()
    assert r.exit_code == 1 and len(lines) == 1, (r.exit_code, r.stdout, r.stderr)
    assert lines[0].startswith(f"skysift versions: error: {path}: ") and "--artifacts" in lines[0]
    why = {"missing": "no such folder", "file": "not a folder", "other folder": "not an artifacts root"}[make]
    assert why in lines[0]


def test_versions_of_a_root_with_nothing_published_yet(tmp_path: Path) -> None:
    (tmp_path / "building" / "job").mkdir(parents=True)  # encoded, never published
    r = CliRunner().invoke(cli, ["versions", "--artifacts", str(tmp_path)])
    assert r.exit_code == 0 and f"no versions under {tmp_path}" in r.stdout


@pytest.mark.parametrize(("x", "text"), [(340.11639144289927, "340"), (1234.5, "1230"), (12.345, "12.3"),
                                         (7.0, "7.00"), (0.012345, "0.0123"), (0.0, "0")])
def test_three_significant_figures(x: float, text: str) -> None:
    assert three_figures(x) == text


def test_rate_column_before_and_after_a_rate_is_known() -> None:
    column = RateColumn()
    bar = Progress()
    task = bar._tasks[bar.add_task("encode", total=100)]
    assert task.speed is None and column.render(task).plain == "– obj/s"  # was "None obj/s"
    measured = SimpleNamespace(speed=340.11639144289927, finished_speed=None)  # a rich Task's two rates
    assert column.render(measured).plain == "340 obj/s"  # was "340.11639144289927 obj/s"
    done = SimpleNamespace(speed=None, finished_speed=1234.5)
    assert column.render(done).plain == "1230 obj/s"


@pytest.mark.parametrize(("args", "says"), [
    (["--backend", "milvus"], "--milvus-uri"),
    (["--backend", "milvus", "--milvus-uri", "/tmp/no-suffix"], "--milvus-uri"),
    (["--backend", "elastic"], "--backend"),
    (["--index-storage", "tape"], "--index-storage"),
])
def test_index_refuses_bad_engine_settings_in_one_line(args: list[str], says: str, tiny_survey: Path,
                                                       tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["index", "--survey", str(tiny_survey), "--encoder", str(tmp_path / "enc"),
                                 "--artifacts", str(tmp_path / "a"), *args])
    lines = r.stderr.strip().splitlines()
    assert r.exit_code in (1, 2) and len(lines) == 1 and says in lines[0], (r.exit_code, r.stdout, r.stderr)
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").rglob("*.npy"))
