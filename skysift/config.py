"""One way to configure every entry point: flag > --set > --config file > SKYSIFT_* variable > default.

    skysift train --config run.toml --set augment.scale_min=0.8 --epochs 20
    skysift train --print-settings                 # the resolved TrainSettings as JSON, nothing run
    skysift train --print-settings > run.json && skysift train --config run.json   # the same run again

The settings classes (SimSettings, TrainSettings, FinetuneSettings, IndexSettings, ServiceSettings,
EvaluateSettings) own every default. A command that builds one declares a keyword-only parameter
`settings` and calls it with its settings class and the flags it was given (None: not given):

    s = settings(TrainSettings, {"epochs": epochs, "augment": {"crop_size_px": crop_size}})

`install` (called by skysift/cli.py, like errors.install) hides that parameter from Typer, adds
`--config FILE`, a repeatable `--set KEY=VALUE` and `--print-settings` to the command, and passes
a `Layers` as `settings`. The package CLIs thus never import `skysift` (the arrows of
tests/test_layering.py), and the flag -> field mapping stays next to each flag.

Keys are field names (`-` may stand for `_`), dotted for a nested model (`augment.scale_min`); a
config file may use tables instead (`[augment]` in TOML). --set values are JSON where they read as
JSON objects, lists, strings or null, comma lists for a list field, else plain text that pydantic
converts (`epochs=3`, `resume=true`). A key that is not a field -- in --config, --set, or a variable
under the class's own prefix (SKYSIFT_TRAIN_..., not the bare SKYSIFT_ the service shares with every
other variable) -- raises UnknownSetting naming it and the nearest valid keys: exit 2 (errors.py).
"""

from __future__ import annotations

import difflib
import functools
import inspect
import json
import os
import tomllib
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

PARAM = "settings"  # the keyword-only parameter a command declares to be configurable
SHARED_PREFIX = "SKYSIFT_"  # ServiceSettings' prefix: every skysift variable has it, so unknown ones pass


class UnknownSetting(ValueError):
    """A key in --config, --set or the environment that is no field of the command's settings."""


def _model_of(annotation: Any) -> Any:
    """The pydantic model class inside `annotation` (`X` or `X | None`), else None."""
    for a in (annotation, *typing.get_args(annotation)):
        if isinstance(a, type) and hasattr(a, "model_fields"):
            return a
    return None


def _is_list(annotation: Any) -> bool:
    return any(typing.get_origin(a) in (tuple, list) for a in (annotation, *typing.get_args(annotation)))


def _unknown(where: str, key: str, prefix: str, valid: list[str]) -> UnknownSetting:
    """`key` (dotted, under `prefix`) is not one of `valid` (the field names at that level)."""
    near = difflib.get_close_matches(key.rsplit(".", 1)[-1], valid, n=3, cutoff=0.6)
    hint = (f"did you mean {' or '.join(repr(prefix + n) for n in near)}?" if near
            else f"the settings{' under ' + prefix[:-1] if prefix else ''} are: {', '.join(map(repr, valid))}")
    return UnknownSetting(f"{where}: unknown setting {key!r}; {hint}")


def _field(cls: Any, dotted: str, where: str) -> Any:
    """The FieldInfo at a dotted key, or UnknownSetting naming the key and the nearest valid ones."""
    model, info, done = cls, None, list[str]()
    for part in dotted.split("."):
        if model is None:  # a key below a field that holds no model (a dict field takes any keys)
            return info
        fields = model.model_fields
        if part not in fields:
            raise _unknown(where, dotted, "".join(f"{d}." for d in done), list(fields))
        info, done = fields[part], [*done, part]
        model = _model_of(info.annotation)
    return info


def _keys(tree: Mapping[str, Any], model: Any, prefix: str = "") -> list[str]:
    """Dotted keys of a nested dict, descending only into fields that are models."""
    out = []
    for k, v in tree.items():
        key = f"{prefix}{k}"
        fields = getattr(model, "model_fields", {}) if model is not None else {}
        sub = _model_of(fields[k].annotation) if k in fields else None
        if isinstance(v, Mapping) and sub is not None:
            out += _keys(v, sub, key + ".")
        else:
            out.append(key)
    return out


def _normal(tree: Mapping[str, Any]) -> dict[str, Any]:
    """`a-b` -> `a_b`; `{"x.y": 1}` -> `{"x": {"y": 1}}`, recursively."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        parts = str(k).replace("-", "_").split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        if isinstance(v, Mapping) and isinstance(node.get(parts[-1]), dict):  # `a.b: 1` and `a: {c: 2}`
            node[parts[-1]].update(_normal(v))
        else:
            node[parts[-1]] = _normal(v) if isinstance(v, Mapping) else v
    return out


def merge(model: Any, *trees: Mapping[str, Any] | None) -> dict[str, Any]:
    """Later trees win, key by key inside a nested model's fields (`augment`); any other value, a
    dict field's included (`backbone_kwargs`), is replaced whole."""
    out: dict[str, Any] = {}
    for tree in trees:
        for k, v in (tree or {}).items():
            fields = getattr(model, "model_fields", {})
            sub = _model_of(fields[k].annotation) if k in fields else None
            if sub is not None and isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
                v = merge(sub, out[k], v)
            out[k] = v
    return out


def given_only(tree: Mapping[str, Any]) -> dict[str, Any]:
    """The flags that were given: None (not given) dropped, also inside nested dicts."""
    return {k: given_only(v) if isinstance(v, Mapping) else v for k, v in tree.items() if v is not None}


def read_file(path: Path) -> dict[str, Any]:
    """A TOML, JSON or YAML (with PyYAML installed) file of settings, as a dict."""
    suffix = path.suffix.lower()
    text = path.read_text()  # a missing file: FileNotFoundError, one line and exit 1 (errors.py)
    try:
        if suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise ValueError(f"--config {path}: reading YAML needs PyYAML (pip install pyyaml); "
                                 "or write the file as TOML or JSON") from None
            data = yaml.safe_load(text) or {}
        else:
            raise ValueError(f"--config {path}: unknown format {suffix or '(no suffix)'}; use .toml, .json or .yaml")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"--config {path}: not valid {suffix[1:].upper()}: {e}") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"--config {path}: must hold a table of setting = value, not {type(data).__name__}")
    return _normal(data)


def _value(text: str, info: Any) -> Any:
    if text[:1] in "[{\"" or text == "null":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"--set {text!r}: not valid JSON ({e.msg} at character {e.pos})") from None
    if info is not None and _is_list(info.annotation):
        return [x.strip() for x in text.split(",") if x.strip()]
    return text  # pydantic converts: "3" -> 3, "true" -> True, "data/x" -> Path


class Layers:
    """What the command line and its files add to a settings class's own sources (the environment,
    the defaults): `Layers(config, sets)(Cls, given)` is the resolved `Cls`."""

    def __init__(self, config: Path | None = None, sets: list[str] | None = None, show: bool = False) -> None:
        self.config, self.sets, self.show = config, list(sets or []), show

    def __call__(self, cls: Any, given: Mapping[str, Any]) -> Any:
        """`cls` from, in order of precedence: `given` (the flags; None = not given), --set, --config,
        SKYSIFT_* variables, the class's defaults. With --print-settings, print it as JSON and exit 0."""
        check_environment(cls)
        layered = merge(cls, self.from_file(cls), self.from_sets(cls), given_only(given))
        s = cls(**layered)  # pydantic-settings: keyword values beat the environment, which beats defaults
        if self.show:
            typer.echo(s.model_dump_json(indent=2))
            raise typer.Exit(0)
        return s

    def from_file(self, cls: Any) -> dict[str, Any]:
        if self.config is None:
            return {}
        tree = read_file(self.config)
        for key in _keys(tree, cls):
            _field(cls, key, f"--config {self.config}")
        return tree

    def from_sets(self, cls: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for item in self.sets:
            key, eq, text = item.partition("=")
            key = key.strip().replace("-", "_")
            if not eq or not key:
                raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. --set augment.scale_min=0.8")
            info = _field(cls, key, f"--set {item}")
            out = merge(cls, out, _normal({key: _value(text.strip(), info)}))
        return out


def check_environment(cls: Any, environ: Mapping[str, str] | None = None) -> None:
    """Refuse a variable under the class's own prefix that names no field (SKYSIFT_TRAIN_EPOCS)."""
    config = cls.model_config
    prefix = str(config.get("env_prefix", "")).upper()
    if not prefix or prefix == SHARED_PREFIX:
        return
    delimiter = config.get("env_nested_delimiter") or None
    for name in sorted(os.environ if environ is None else environ):
        if not name.upper().startswith(prefix):
            continue
        rest = name[len(prefix):].lower()
        key = ".".join(rest.split(delimiter)) if delimiter else rest
        _field(cls, key, f"environment variable {name}")


ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", metavar="FILE", help="settings file (.toml, .json, .yaml): field = value, a table per nested "
                                     "model; flags and --set win over it, it wins over SKYSIFT_* variables")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", metavar="KEY=VALUE", help="any settings field, repeatable, dotted for nested ones (augment.scale_min=0.8);"
                                       " wins over --config; --print-settings lists them all")]
PrintOpt = Annotated[bool, typer.Option(
    "--print-settings", help="print the resolved settings (every field: the defaults and what was given) as JSON, "
                             "a valid --config file, and exit")]


def configurable(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` with its `settings` parameter replaced by --config, --set and --print-settings."""

    @functools.wraps(fn)
    def run(*args: Any, skysift_config: Path | None = None, skysift_set: list[str] | None = None,
            skysift_print_settings: bool = False, **kwargs: Any) -> Any:
        return fn(*args, **kwargs, **{PARAM: Layers(skysift_config, skysift_set, skysift_print_settings)})

    sig = inspect.signature(fn, eval_str=True)
    params = [p for p in sig.parameters.values() if p.name != PARAM]
    kw = inspect.Parameter.KEYWORD_ONLY
    params += [inspect.Parameter("skysift_config", kw, default=None, annotation=ConfigOpt),
               inspect.Parameter("skysift_set", kw, default=None, annotation=SetOpt),
               inspect.Parameter("skysift_print_settings", kw, default=False, annotation=PrintOpt)]
    run.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    run.__annotations__ = {}  # Typer reads the signature; the original's annotations name `settings`
    return run


def install(app: typer.Typer) -> None:
    """Make every registered command that declares a keyword-only `settings` parameter configurable."""
    for info in app.registered_commands:
        fn = info.callback
        if fn is not None and PARAM in inspect.signature(fn).parameters:
            info.callback = configurable(fn)
