"""One configuration pattern (skysift/config.py) for every entry point: each settings field can be
given on the command line (its flag or --set), in a --config file (TOML, JSON, YAML) or as a
SKYSIFT_* variable, with flag > --set > --config > environment > default; a key that is no field
fails in one line naming it and the nearest valid ones (exit 2); `serve --workers N` hands the
workers one settings file. `--print-settings` resolves the settings and stops, so nothing here
trains, encodes or serves."""

from __future__ import annotations

import importlib
import json
import os
import re
import stat
import types
import typing
from pathlib import Path
from typing import Any, Literal

import annotated_types
import pytest
import typer
from typer.testing import CliRunner

from skysift.cli import cli
from skysift.errors import FIELD_TO_OPTION

ROOT = Path(__file__).resolve().parents[1]

# command: (module, settings class, arguments it needs besides the field under test)
ENTRY: dict[str, tuple[str, str, list[str]]] = {
    "simulate": ("survey.simulate.settings", "SimSettings", []),
    "train": ("training.settings", "TrainSettings", []),
    "finetune": ("training.finetune_settings", "FinetuneSettings",
                 ["--set", "survey=s", "--set", "encoder=e", "--set", "label_column=class", "--set", "out_dir=o"]),
    "encode": ("indexer.settings", "IndexSettings", []),
    "index": ("indexer.settings", "IndexSettings", []),
    "serve": ("app.settings", "ServiceSettings", []),
    "evaluate": ("evaluation.settings", "EvaluateSettings", ["--set", "artifacts=a"]),
}
MILVUS = "http://localhost:19530"
# Values a generic guess would get wrong, and arguments a value needs alongside (cross-field checks).
VALUE: dict[str, Any] = {"milvus_uri": MILVUS, "tasks": ["lenses", "anomalies"]}
ALONGSIDE: dict[tuple[str, str], list[str]] = {
    ("IndexSettings", "backend"): ["--set", f"milvus_uri={MILVUS}"],
    ("FinetuneSettings", "regression_metric"): ["--task", "regression"],
    ("EvaluateSettings", "version"): ["--set", "artifacts=null"],  # exactly one of version, artifacts
}


@pytest.fixture(autouse=True)
def no_skysift_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SKYSIFT_"):
            monkeypatch.delenv(name)


def settings_class(command: str) -> Any:
    module, name, _ = ENTRY[command]
    return getattr(importlib.import_module(module), name)


def invoke(*args: str, env: dict[str, str] | None = None) -> typer.testing.Result:
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def resolved(command: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    r = invoke(command, *ENTRY[command][2], *args, "--print-settings", env=env)
    assert r.exit_code == 0, (r.exit_code, r.stdout, r.stderr)
    return json.loads(r.stdout)


def one_line(r: typer.testing.Result, command: str) -> str:
    lines = r.stderr.splitlines()
    assert r.exit_code == 2 and len(lines) == 1, (r.exit_code, r.stdout, r.stderr)
    assert lines[0].startswith(f"skysift {command}: error: ") and "Traceback" not in r.stderr
    return lines[0]


def leaves(model: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted name, FieldInfo) of every field, a nested model's fields included (augment.scale_min)."""
    out = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and hasattr(ann, "model_fields"):
            out += leaves(ann, f"{prefix}{name}.")
        else:
            out.append((prefix + name, info))
    return out


def at(tree: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def sample(name: str, info: Any, default: Any) -> Any:
    """A valid value other than the default, as JSON would show it."""
    if name.rsplit(".", 1)[-1] in VALUE:
        return VALUE[name.rsplit(".", 1)[-1]]
    ann = info.annotation
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        ann = next(a for a in typing.get_args(ann) if a is not type(None))
    if ann is bool:
        return not default
    if typing.get_origin(ann) is Literal:
        return next((c for c in typing.get_args(ann) if c != default), default)  # Literal["sgd"]: itself
    if ann is int:
        high = [m for m in info.metadata if isinstance(m, annotated_types.Le | annotated_types.Lt)]
        return 3 if default is None else default - 1 if high else default + 1
    if ann is float:
        return round(default * 0.99, 6) if default else 0.01
    if ann is str:
        return "x"
    if ann is Path:
        return f"p/{name}"
    if typing.get_origin(ann) is tuple:
        inner = typing.get_args(ann)[0]
        return {str: ["a", "b"], float: [0.5, 1.0], int: [3, 4]}[inner]
    if typing.get_origin(ann) is dict:
        return {"a": 1}
    raise AssertionError(f"no sample value for {name}: {ann}")


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def test_every_entry_point_is_configurable() -> None:
    """The commands that build a settings object all have --config, --set and --print-settings."""
    commands = typer.main.get_command(cli).commands  # type: ignore[attr-defined]
    for command in ENTRY:
        flags = {o for p in commands[command].params for o in p.opts}
        assert {"--config", "--set", "--print-settings"} <= flags, command


@pytest.mark.parametrize("command", ENTRY)
def test_every_settings_field_can_be_set_on_the_command_line(command: str) -> None:
    cls = settings_class(command)
    defaults = resolved(command)
    fields = leaves(cls)
    assert len(fields) >= 7
    for name, info in fields:
        if name == "produced_by":  # not a setting: the command line the card records (test below)
            continue
        value = sample(name, info, at(defaults, name))
        assert value != at(defaults, name) or len(typing.get_args(info.annotation)) == 1, name
        extra = ALONGSIDE.get((cls.__name__, name), [])
        got = resolved(command, *extra, "--set", f"{name}={as_text(value)}")
        assert at(got, name) == value, f"{command} --set {name}"


def option_field(option: str, cls: Any) -> str | None:
    """The settings field a command option sets: same name, errors.FIELD_TO_OPTION, or none."""
    names = dict(leaves(cls))
    back = {v: k for k, v in FIELD_TO_OPTION.items()}
    for name in (option, back.get(option), f"augment.{back.get(option)}"):
        if name in names:
            return name
    return None


NOT_FIELDS = {"publish_now", "threads", "augment_settings"}


@pytest.mark.parametrize("command", ENTRY)
def test_every_flag_sets_its_field_and_beats_set(command: str) -> None:
    """Each option of an entry point maps to its field (the flag wins over --set of that field), and
    an option that maps to no field is one of the known few (JSON kwargs, --publish, --threads)."""
    cls = settings_class(command)
    defaults = resolved(command)
    params = typer.main.get_command(cli).commands[command].params  # type: ignore[attr-defined]
    infos = dict(leaves(cls))
    generic = {"skysift_config", "skysift_set", "skysift_print_settings"}
    for p in params:
        if p.name in generic or getattr(p, "param_type_name", "") != "option":
            continue
        field = option_field(p.name, cls)
        if field is None:
            assert p.name in NOT_FIELDS, f"{command} {p.opts[0]} sets no settings field"
            continue
        value = sample(field, infos[field], at(defaults, field))
        if isinstance(value, bool):
            args = [p.opts[0] if value else p.secondary_opts[0]]
        else:
            args = [p.opts[0], ",".join(map(str, value)) if isinstance(value, list) else as_text(value)]
        other = sample(field, infos[field], value)
        extra = ALONGSIDE.get((cls.__name__, field), [])
        got = resolved(command, *extra, "--set", f"{field}={as_text(other)}", *args)
        assert at(got, field) == value, f"{command} {args}"


@pytest.mark.parametrize("fmt", ["toml", "json", "yaml"])
def test_config_file_precedence(fmt: str, tmp_path: Path) -> None:
    """flag > --set > --config > SKYSIFT_TRAIN_* > default, nested augment fields merged across them."""
    conf = {"epochs": 3, "seed": 5, "batch_size": 8, "augment": {"scale_min": 0.8, "crop_size_px": 24}}
    path = tmp_path / f"run.{fmt}"
    if fmt == "toml":
        path.write_text("epochs = 3\nseed = 5\nbatch-size = 8\n[augment]\nscale_min = 0.8\ncrop_size_px = 24\n")
    elif fmt == "json":
        path.write_text(json.dumps(conf))
    else:
        path.write_text("epochs: 3\nseed: 5\nbatch_size: 8\naugment.scale_min: 0.8\naugment:\n  crop_size_px: 24\n")
    env = {"SKYSIFT_TRAIN_EPOCHS": "4", "SKYSIFT_TRAIN_SEED": "6", "SKYSIFT_TRAIN_MOMENTUM": "0.9",
           "SKYSIFT_TRAIN_AUGMENT__SCALE_MAX": "1.3"}
    s = resolved("train", "--config", str(path), "--seed", "7", "--set", "batch_size=16", "--crop-size", "40",
                 env=env)
    assert s["momentum"] == 0.9  # environment > default
    assert s["epochs"] == 3  # config > environment
    assert s["seed"] == 7  # flag > config > environment
    assert s["batch_size"] == 16  # --set > config
    assert s["augment"]["crop_size_px"] == 40  # flag > config, inside the nested model
    assert (s["augment"]["scale_min"], s["augment"]["scale_max"]) == (0.8, 1.3)  # config and env both reach it
    assert s["augment"]["fwhm_max_arcsec"] == 2.0  # default
    assert s["temperature"] == 0.2 and s["queue_size"] is None


def test_a_saved_config_does_not_replace_the_recorded_command_line(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "run.json").write_text(json.dumps({"epochs": 2, "produced_by": "skysift train --epochs 2"}))
    monkeypatch.setattr("sys.argv", ["skysift", "train", "--config", "run.json"])  # what the card records
    s = resolved("train", "--config", str(tmp_path / "run.json"))
    assert s["epochs"] == 2 and s["produced_by"] == "skysift train --config run.json"


def test_print_settings_round_trips_through_config(tmp_path: Path) -> None:
    first = resolved("index", "--job", "j", "--set", "recall_sample=50", "--set", "healpix_nside=64")
    (tmp_path / "index.json").write_text(json.dumps(first))
    assert resolved("index", "--config", str(tmp_path / "index.json")) == first


def test_service_precedence_and_lists_in_set(tmp_path: Path) -> None:
    (tmp_path / "service.toml").write_text("max_k = 9\nport = 9000\n")
    s = resolved("serve", "--config", str(tmp_path / "service.toml"), "--port", "9100",
                 env={"SKYSIFT_MAX_K": "7", "SKYSIFT_DEFAULT_K": "5"})
    assert (s["max_k"], s["port"], s["default_k"]) == (9, 9100, 5)
    ev = resolved("evaluate", "--set", "probe_C=0.5,2", "--set", 'rare_classes=["lens","artifact"]')
    assert ev["probe_C"] == [0.5, 2.0] and ev["rare_classes"] == ["lens", "artifact"]


def misspelt(cls: Any) -> tuple[str, str]:
    """(a field with a long name, that name with one letter dropped)."""
    name = next(n for n in cls.model_fields if len(n) >= 6 and n != "survey")
    return name, name[:3] + name[4:]


@pytest.mark.parametrize("command", ENTRY)
def test_a_misspelt_key_fails_naming_it(command: str, tmp_path: Path) -> None:
    cls = settings_class(command)
    right, wrong = misspelt(cls)
    hint = f"unknown setting '{wrong}'; did you mean '{right}'"
    base = ENTRY[command][2]
    line = one_line(invoke(command, *base, "--set", f"{wrong}=1"), command)
    assert f"--set {wrong}=1: " in line and hint in line
    (tmp_path / "c.toml").write_text(f"{wrong} = 1\n")
    line = one_line(invoke(command, *base, "--config", str(tmp_path / "c.toml")), command)
    assert f"--config {tmp_path / 'c.toml'}: " in line and hint in line
    prefix = cls.model_config["env_prefix"]
    if prefix != "SKYSIFT_":  # the service's bare prefix is every skysift variable's: unknown ones pass
        line = one_line(invoke(command, *base, env={f"{prefix}{wrong.upper()}": "1"}), command)
        assert f"environment variable {prefix}{wrong.upper()}: " in line and hint in line


def test_a_misspelt_nested_key_and_a_key_far_from_any() -> None:
    line = one_line(invoke("train", "--set", "augment.scal_min=0.8"), "train")
    assert "unknown setting 'augment.scal_min'; did you mean 'augment.scale_min'" in line
    line = one_line(invoke("train", env={"SKYSIFT_TRAIN_AUGMENT__SCALEMIN": "0.8"}), "train")
    assert "SKYSIFT_TRAIN_AUGMENT__SCALEMIN" in line and "'augment.scale_min'" in line
    line = one_line(invoke("simulate", "--set", "qqqqq=1"), "simulate")
    assert "unknown setting 'qqqqq'; the settings are: 'out_dir', 'preset'" in line


def test_bad_set_and_config_syntax_are_one_line(tmp_path: Path) -> None:
    r = invoke("simulate", "--set", "seed")
    assert r.exit_code == 1 and "expected KEY=VALUE" in r.stderr
    (tmp_path / "c.ini").write_text("seed=1")
    r = invoke("simulate", "--config", str(tmp_path / "c.ini"))
    assert r.exit_code == 1 and "use .toml, .json or .yaml" in r.stderr and len(r.stderr.splitlines()) == 1
    (tmp_path / "c.toml").write_text("seed = = 1")
    r = invoke("simulate", "--config", str(tmp_path / "c.toml"))
    assert r.exit_code == 1 and "not valid TOML" in r.stderr
    r = invoke("simulate", "--config", str(tmp_path / "missing.toml"))
    assert r.exit_code == 1 and "missing.toml: no such file" in r.stderr
    r = invoke("simulate", "--set", "seed=abc")  # a value pydantic refuses: bad usage, naming the field
    assert r.exit_code == 2 and "seed: Input should be a valid integer" in r.stderr


def test_backbone_kwargs_follow_the_backbone() -> None:
    """The half-width kwargs belong to resnet18 alone; another backbone gets timm's own."""
    from encoder.model import BACKBONE_KWARGS

    half = {"channels": [32, 64, 128, 256], "stem_width": 32}
    assert BACKBONE_KWARGS["resnet18"] == half
    assert resolved("train")["backbone_kwargs"] == half
    assert resolved("train", "--backbone", "resnet34")["backbone_kwargs"] == {}
    assert resolved("train", env={"SKYSIFT_TRAIN_BACKBONE": "resnet50"})["backbone_kwargs"] == {}
    assert resolved("train", "--backbone-kwargs", "{}")["backbone_kwargs"] == {}
    kw = resolved("train", "--backbone", "resnet34", "--set", 'backbone_kwargs={"stem_width": 16}')
    assert kw["backbone_kwargs"] == {"stem_width": 16}


def test_a_resnet34_from_its_default_kwargs_is_full_width() -> None:
    from encoder.model import Encoder
    from training.settings import TrainSettings

    s = TrainSettings(backbone="resnet34")
    enc = Encoder(s.backbone, 3, s.proj_dim, s.proj_hidden, s.small_input, s.backbone_kwargs)
    assert enc.embedding_dim == 512 and enc.backbone.conv1.out_channels == 64


@pytest.fixture()
def no_server(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """uvicorn.run replaced: records what a worker process would build from its environment."""
    import uvicorn

    import app.main

    started: list[dict[str, Any]] = []

    def fake_run(target: Any, **kw: Any) -> None:
        built: list[Any] = []
        monkeypatch.setattr(app.main, "create_app", lambda s: built.append(s))
        path = os.environ.get("SKYSIFT_SETTINGS_FILE")
        record = {"target": target, "kw": kw, "path": path,
                  "env": {k: v for k, v in os.environ.items() if k.startswith("SKYSIFT_")}}
        if path:
            record["mode"] = stat.S_IMODE(os.stat(path).st_mode)
            app.main.create_app_from_env()  # what each worker process runs
            record["settings"] = built[0]
        started.append(record)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    return started


def test_serve_workers_get_the_settings_as_one_file(tmp_path: Path, no_server: list[dict[str, Any]]) -> None:
    root = tmp_path / "artifacts"
    root.mkdir()
    (tmp_path / "service.toml").write_text("admin_token = \"t0ken\"\nmax_upload_side_px = 512\n")
    r = invoke("serve", "--artifacts", str(root), "--workers", "2", "--config", str(tmp_path / "service.toml"),
               "--set", "max_k=9", "--backend", "milvus", "--milvus-uri", MILVUS,
               env={"SKYSIFT_DEFAULT_K": "4"})
    assert r.exit_code == 0, r.stderr
    [run] = no_server
    assert run["target"] == "app.main:create_app_from_env" and run["kw"]["workers"] == 2
    assert run["env"] == {"SKYSIFT_SETTINGS_FILE": run["path"], "SKYSIFT_DEFAULT_K": "4"}  # nothing flattened
    assert run["mode"] == 0o600  # it holds the tokens
    s = run["settings"]
    assert (s.artifacts, s.admin_token, s.max_upload_side_px, s.max_k, s.default_k, s.workers) == \
        (root, "t0ken", 512, 9, 4, 2)
    assert (s.backend, s.milvus_uri) == ("milvus", MILVUS)
    assert not Path(run["path"]).exists() and "SKYSIFT_SETTINGS_FILE" not in os.environ  # removed at exit


def test_a_worker_file_wins_over_the_workers_own_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import app.main
    from app.settings import ServiceSettings

    path = tmp_path / "s.json"
    path.write_text(ServiceSettings(artifacts=tmp_path, max_k=5).model_dump_json())
    monkeypatch.setenv("SKYSIFT_SETTINGS_FILE", str(path))
    monkeypatch.setenv("SKYSIFT_MAX_K", "11")
    built: list[Any] = []
    monkeypatch.setattr(app.main, "create_app", lambda s: built.append(s))
    app.main.create_app_from_env()
    assert built[0].max_k == 5 and built[0].artifacts == tmp_path


def test_torchrun_variables_are_read_by_entry_points_only() -> None:
    reads = re.compile(r"environ[^\n]*\b(RANK|WORLD_SIZE|LOCAL_RANK)\b")
    found = [str(f.relative_to(ROOT)) for pkg in ("survey", "encoder", "training", "indexer", "evaluation", "app")
             for f in (ROOT / pkg).rglob("*.py") if f.name != "cli.py" and reads.search(f.read_text())]
    assert found == []
