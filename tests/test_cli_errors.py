"""A failed command ends in one line naming the flag to use, exit 1 (bad usage 2), no traceback
unless --debug (skysift/errors.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from skysift.cli import cli
from skysift.errors import flagify, message

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def images(tmp_path: Path) -> Path:
    root = tmp_path / "imgs"
    root.mkdir()
    for name in ("a", "b"):
        Image.fromarray(np.full((12, 12, 3), 100, np.uint8)).save(root / f"{name}.png")
    (root / "catalog.csv").write_text("object_id,ra,dec,file\na,1,2,a.png\nb,1,2,b.png\n")
    return root


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


def one_line(stderr: str, command: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"skysift {command}: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_images_without_a_pixel_scale_name_the_flag(images: Path, tmp_path: Path) -> None:
    code, out, err = run("ingest", images, "--kind", "images", "--out", tmp_path / "out")
    line = one_line(err, "ingest")
    assert code == 1 and "--pixel-scale-arcsec" in line and "PNG/JPEG" in line
    assert not (tmp_path / "out").exists()


def test_existing_shards_name_the_overwrite_flag(images: Path, tmp_path: Path) -> None:
    args = ("ingest", images, "--kind", "images", "--out", tmp_path / "out", "--pixel-scale-arcsec", "0.262")
    assert run(*args)[0] == 0
    code, _, err = run(*args)
    assert code == 1 and "--overwrite (overwrite=True)" in one_line(err, "ingest")
    assert run(*args, "--overwrite")[0] == 0


def test_an_unknown_kind_is_bad_usage(images: Path, tmp_path: Path) -> None:
    code, _, err = run("ingest", images, "--kind", "png", "--out", tmp_path / "out")
    assert code == 2 and "'png' is not one of" in err and "Traceback" not in err


def test_index_of_a_missing_survey_folder(tmp_path: Path) -> None:
    code, _, err = run("index", "--survey", tmp_path / "nowhere", "--encoder", tmp_path / "enc",
                       "--artifacts", tmp_path / "art", "--device", "cpu")
    line = one_line(err, "index")
    assert code == 1 and "nowhere" in line and "no survey shards" in line


def test_settings_that_do_not_validate_are_bad_usage_naming_the_flag(tmp_path: Path) -> None:
    code, _, err = run("index", "--survey", tmp_path, "--shard-size", "0")
    line = one_line(err, "index")
    assert code == 2 and "--shard-size: Input should be greater than or equal to 1" in line
    code, _, err = run("simulate", "--out", tmp_path / "sim", "--workers", "0")
    assert code == 2 and "--workers: Input should be greater than or equal to 1" in one_line(err, "simulate")


def test_a_value_outside_an_options_choices_is_bad_usage_listing_them(tmp_path: Path) -> None:
    code, _, err = run("simulate", "--out", tmp_path / "sim", "--preset", "huge")
    assert code == 2 and "'huge' is not one of" in err and "'tiny'" in err and "Traceback" not in err


def test_publish_of_a_missing_stage_is_refused_in_one_line(tmp_path: Path) -> None:
    code, _, err = run("publish", "--stage", tmp_path / "stage", "--artifacts", tmp_path / "art")
    assert code == 1 and "stage" in one_line(err, "publish")


def test_debug_lets_the_exception_through(images: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["--debug", "ingest", str(images), "--kind", "images", "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and isinstance(r.exception, ValueError) and "error:" not in r.stderr
    r = CliRunner().invoke(cli, ["ingest", str(images), "--kind", "images", "--out", str(tmp_path / "o")],
                           env={"SKYSIFT_DEBUG": "1"})
    assert isinstance(r.exception, ValueError)


def test_the_installed_command_prints_one_line_or_with_debug_the_traceback(images: Path, tmp_path: Path) -> None:
    """Through `python -m skysift.cli` (what the `skysift` script runs): real stderr, real exit code."""
    args = [sys.executable, "-m", "skysift.cli", "ingest", str(images), "--kind", "images", "--out", str(tmp_path)]
    env = {k: v for k, v in os.environ.items() if k != "SKYSIFT_DEBUG"}
    plain = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=env)
    assert plain.returncode == 1 and "--pixel-scale-arcsec" in one_line(plain.stderr, "ingest")
    debug = subprocess.run([*args[:3], "--debug", *args[3:]], capture_output=True, text=True, cwd=ROOT, env=env)
    assert debug.returncode == 1 and "Traceback" in debug.stderr + debug.stdout
    assert "pixel_scale_arcsec" in debug.stderr + debug.stdout


def test_python_names_become_flags_only_where_the_command_has_them() -> None:
    import typer

    ingest = typer.main.get_command(cli).commands["ingest"]  # type: ignore[attr-defined]
    opts = {p.name: p for p in ingest.params if p.name}
    assert flagify("pass size_px=", opts) == "pass --size-px (size_px=)"
    assert flagify("pass overwrite=True to replace", opts) == "pass --overwrite (overwrite=True) to replace"
    assert flagify("needs pixel_scale_arcsec: no WCS", opts) == \
        "needs --pixel-scale-arcsec (pixel_scale_arcsec): no WCS"
    assert flagify("kind='mosaic' needs size_px and catalog= (the CSV)", opts) == \
        "kind='mosaic' needs --size-px (size_px) and --catalog (catalog=) (the CSV)"
    # left alone: values, paths, longer names, plain words, names the command does not have
    for text in ("kind='images'", "data/size_px/x.h5", "source_size_px=", "its catalog inside", "lower lens_seeds"):
        assert flagify(text, opts) == text
    assert message(FileNotFoundError(2, "No such file or directory", "x.csv")) == "x.csv: no such file or directory"
    assert message(ValueError("two\nlines")) == "two lines"


def test_train_augment_settings_are_checked_field_by_field(tmp_path: Path) -> None:
    code, _, err = run("train", "--survey", tmp_path, "--out", tmp_path / "run",
                       "--augment-settings", '{"scal_min": 0.8}')
    assert code == 2 and "scal_min: Extra inputs are not permitted" in one_line(err, "train")
    code, _, err = run("train", "--survey", tmp_path, "--out", tmp_path / "run", "--augment-settings", "{bad")
    assert code == 1 and "--augment-settings is not JSON" in one_line(err, "train")
    code, _, err = run("train", "--survey", tmp_path, "--out", tmp_path / "run", "--augment-settings", "[1]")
    assert code == 1 and "--augment-settings must be a JSON object" in one_line(err, "train")
