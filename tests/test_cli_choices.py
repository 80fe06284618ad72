"""String options whose values are a fixed set are choices: `--help` lists them, a wrong value is a
usage error (exit 2) naming them, and each offers exactly the values its settings field accepts
(the settings class stays the one source; this test catches the two drifting apart)."""

from __future__ import annotations

import importlib
import typing
from typing import Any, Literal

import pytest
from typer.testing import CliRunner

from skysift.cli import cli

# (command, its function, option parameter, settings class, field)
CHOICES = [
    ("simulate", "survey.cli:simulate", "preset", "survey.simulate.settings:SimSettings", "preset"),
    ("train", "training.cli:train", "precision", "training.settings:TrainSettings", "precision"),
    ("train", "training.cli:train", "device", "training.settings:TrainSettings", "device"),
    ("finetune", "training.cli:finetune", "task", "training.finetune_settings:FinetuneSettings", "task"),
    ("finetune", "training.cli:finetune", "regression_metric", "training.finetune_settings:FinetuneSettings",
     "regression_metric"),
    ("finetune", "training.cli:finetune", "device", "training.finetune_settings:FinetuneSettings", "device"),
    ("index", "indexer.cli:index", "index_storage", "indexer.settings:IndexSettings", "index_storage"),
    ("index", "indexer.cli:index", "map_method", "indexer.settings:IndexSettings", "map_method"),
    ("index", "indexer.cli:index", "anomaly_method", "indexer.settings:IndexSettings", "anomaly_method"),
    ("index", "indexer.cli:index", "backend", "indexer.settings:IndexSettings", "backend"),
    ("index", "indexer.cli:index", "milvus_index", "indexer.settings:IndexSettings", "milvus_index"),
    ("serve", "app.cli:serve", "backend", "app.settings:ServiceSettings", "backend"),
]


def _load(path: str) -> Any:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def _literal_values(annotation: Any) -> tuple[str, ...]:
    """The values of the Literal inside Annotated[Literal[...] | None, ...] (or a bare Literal)."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    literals = [a for a in typing.get_args(annotation) if typing.get_origin(a) is Literal]
    assert len(literals) == 1, annotation
    return typing.get_args(literals[0])


@pytest.mark.parametrize(("command", "function", "option", "settings_class", "field"), CHOICES,
                         ids=[f"{c[0]}--{c[2]}" for c in CHOICES])
def test_option_offers_exactly_the_settings_values_and_refuses_others(
        command: str, function: str, option: str, settings_class: str, field: str) -> None:
    hints = typing.get_type_hints(_load(function), include_extras=True)
    offered = _literal_values(hints[option])
    accepted = _literal_values(_load(settings_class).model_fields[field].annotation)
    assert offered == accepted

    flag = "--" + option.replace("_", "-")
    r = CliRunner().invoke(cli, [command, "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "<" + "|".join(offered) + ">" in r.stdout, r.stdout
    r = CliRunner().invoke(cli, [command, flag, "not-a-choice"], env={"COLUMNS": "300"})
    assert r.exit_code == 2, r.output
    message = " ".join(line.strip("│ ") for line in r.output.splitlines())  # rich's error box, unwrapped
    assert f"Invalid value for '{flag}'" in message and "'not-a-choice' is not one of" in message, message
    assert all(f"'{v}'" in message for v in offered), message
