"""The `skysift` command itself: --version, a --help that loads no heavy module, and `serve`
refusing paths that do not exist (one line, exit 1) before it starts a server."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner

from skysift.cli import cli

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "timm", "galsim", "lenstronomy", "faiss", "scipy", "sklearn", "umap", "h5py",
         "astropy", "fastapi", "uvicorn", "app.main")


def test_version_prints_the_installed_version() -> None:
    r = CliRunner().invoke(cli, ["--version"])
    assert r.exit_code == 0 and r.stdout.strip() == f"skysift {version('skysift')}"


def test_help_imports_none_of_the_heavy_modules() -> None:
    """`skysift --help` took ~6 s when every command's module (torch, GalSim, ...) was imported up front."""
    code = ("import json, sys; import skysift.cli; "
            f"print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
    r = CliRunner().invoke(cli, ["--help"], env={"COLUMNS": "120"})
    assert r.exit_code == 0
    for command in ("simulate", "ingest", "survey-figures", "train", "training-plots", "encode", "index", "publish",
                    "versions", "serve", "evaluate", "science-doc", "supervised-check", "demo"):
        assert f" {command} " in r.stdout, r.stdout


def one_line(r, command: str) -> str:  # noqa: ANN001 (a typer.testing Result)
    lines = r.stderr.splitlines()
    assert r.exit_code == 1 and len(lines) == 1 and lines[0].startswith(f"skysift {command}: error: "), r.stderr
    return lines[0]


@pytest.fixture()
def no_server(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    import uvicorn

    started: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.append(app))
    return started


def test_serve_refuses_a_missing_artifacts_root_or_survey_root(tmp_path: Path, no_server: list[object]) -> None:
    runner = CliRunner()
    line = one_line(runner.invoke(cli, ["serve", "--artifacts", str(tmp_path / "nope")]), "serve")
    assert f"{tmp_path / 'nope'}: no such folder" in line and "--artifacts" in line
    (tmp_path / "file").write_text("x")
    assert "not a folder" in one_line(runner.invoke(cli, ["serve", "--artifacts", str(tmp_path / "file")]), "serve")
    (tmp_path / "other" / "stuff").mkdir(parents=True)
    assert "not an artifacts root" in one_line(runner.invoke(cli, ["serve", "--artifacts", str(tmp_path / "other")]),
                                               "serve")
    root = tmp_path / "artifacts"
    root.mkdir()
    line = one_line(runner.invoke(cli, ["serve", "--artifacts", str(root), "--survey-root", str(tmp_path / "sv")]),
                    "serve")
    assert f"--survey-root {tmp_path / 'sv'}: no such folder" in line
    assert no_server == []


def test_serve_on_an_empty_root_says_it_waits_for_a_first_version(tmp_path: Path, no_server: list[object]) -> None:
    root = tmp_path / "artifacts"
    root.mkdir()
    r = CliRunner().invoke(cli, ["serve", "--artifacts", str(root)])
    assert r.exit_code == 0 and len(no_server) == 1
    assert f"nothing published under {root} yet" in r.stderr


def test_survey_figures_and_training_plots_are_commands(tiny_survey: Path, tmp_path: Path) -> None:
    """The former `python -m survey.simulate.figures` / `python -m training.plots` scripts."""
    from survey.native import NativeSurvey

    runner = CliRunner()
    r = runner.invoke(cli, ["survey-figures", "columns", "--survey", str(tiny_survey)])
    assert r.exit_code == 0, r.output
    names = NativeSurvey(tiny_survey).catalog.names
    assert all(f"| `{name}` |" in r.stdout for name in names)
    r = runner.invoke(cli, ["survey-figures", "hist", "--survey", str(tiny_survey), "--out", str(tmp_path / "h.png")])
    assert r.exit_code == 0 and r.stdout.strip() == str(tmp_path / "h.png") and (tmp_path / "h.png").stat().st_size
    r = runner.invoke(cli, ["survey-figures", "sheet", "--survey", str(tiny_survey)])
    assert r.exit_code == 2 and "sheets" in r.output and "columns" in r.output  # the choices, named

    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("\n".join(json.dumps(rec) for rec in (
        {"step": 1, "loss": 7.0, "lr": 0.1}, {"step": 2, "loss": 6.5, "lr": 0.05},
        {"step": 2, "knn_precision_at_10": 0.4})) + "\n")
    r = runner.invoke(cli, ["training-plots", str(metrics), "--out", str(tmp_path / "img"), "--queue-size", "64"])
    assert r.exit_code == 0, r.output
    assert r.stdout.split() == [str(tmp_path / "img" / "training_loss.png"), str(tmp_path / "img" / "training_knn.png")]
