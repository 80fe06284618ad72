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


def index_with(args: list[str], survey: Path, tmp_path: Path) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["index", "--survey", str(survey), "--encoder", str(tmp_path / "enc"),
                                 "--artifacts", str(tmp_path / "a"), *args])
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").rglob("*.npy"))  # refused before encoding
    return r.exit_code, r.stderr


@pytest.mark.parametrize("args", [["--backend", "milvus"], ["--backend", "milvus", "--milvus-uri", "/tmp/no-suffix"]])
def test_index_refuses_a_milvus_backend_without_a_usable_uri_in_one_line(args: list[str], tiny_survey: Path,
                                                                         tmp_path: Path) -> None:
    code, err = index_with(args, tiny_survey, tmp_path)
    lines = err.strip().splitlines()
    assert code in (1, 2) and len(lines) == 1 and "--milvus-uri" in lines[0], (code, err)


@pytest.mark.parametrize(("args", "choice"), [(["--backend", "elastic"], "'faiss'"),
                                              (["--index-storage", "tape"], "'ondisk'")])
def test_index_engine_options_list_their_choices(args: list[str], choice: str, tiny_survey: Path,
                                                 tmp_path: Path) -> None:
    code, err = index_with(args, tiny_survey, tmp_path)
    assert code == 2 and f"'{args[1]}' is not one of" in err and choice in err, err
