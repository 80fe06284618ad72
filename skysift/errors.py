"""How a failed command reaches the terminal: one line on stderr, `skysift <command>: error: <message>`.

    skysift ingest imgs --kind images --out data/imgs
    skysift ingest: error: kind='images' needs --pixel-scale-arcsec (pixel_scale_arcsec): ...   (exit 1)

The one place where exceptions become exit codes (`install` wraps every command of the app):
- settings that do not validate (a pydantic ValidationError of a `...Settings` model) and a key
  in --config, --set or a SKYSIFT_* variable that is no setting (config.UnknownSetting): exit 2, as
  Click's own usage errors (unknown option, bad choice, missing argument);
- the packages' named errors (survey, readers, units, encoder, training, indexer, evaluation, all
  ValueError subclasses but UnknownObject and RankDivergence), any other ValueError (a value or a
  combination of values the code refuses) and a missing or unreadable input file: exit 1.
Anything else is a bug and keeps its traceback. `skysift --debug ...` or SKYSIFT_DEBUG=1 lets the
handled exceptions through too, with their traceback.

Library messages speak Python (`pass size_px=`, `overwrite=True`, `lower lens_seeds`); at this
edge every argument name that is an option of the failing command is rewritten to its flag, the
Python name kept in brackets: `pass --size-px (size_px=)`, `pass --overwrite (overwrite=True)`.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections.abc import Callable
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from encoder.errors import IncompatibleInput, WeightsError
from evaluation.errors import EvaluationError
from indexer.errors import ArtifactError
from survey.errors import CatalogError, SurveyError, UnknownObject, UnreadableCutout
from training.errors import RankDivergence, ResumeMismatch

from .config import UnknownSetting

NAMED: tuple[type[BaseException], ...] = (
    SurveyError, UnreadableCutout, CatalogError, UnknownObject, IncompatibleInput, WeightsError,
    ResumeMismatch, RankDivergence, ArtifactError, EvaluationError,
)
MISSING_INPUT: tuple[type[BaseException], ...] = (
    FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, FileExistsError,
)
HANDLED = (*NAMED, *MISSING_INPUT, ValueError)  # ValidationError is a ValueError

# Settings fields whose command option has another name (the flag itself may differ again).
FIELD_TO_OPTION = {"out_dir": "out", "artifacts": "artifacts_root", "compile": "compile_model",
                   "crop_size_px": "crop_size"}

_NAME = re.compile(
    r"(?<![\w./\-'\"])"             # not inside a path, a flag, a word or a quoted value
    r"(?P<name>[a-z][a-z0-9_]*)"
    r"(?:(?P<bool>=(?:True|False))\b|(?P<eq>=)(?![\w'\"(\[{.\-]))?"  # name=True | name= (no value) | name
    r"(?![\w/\-=]|\.\w)"
)


def exit_code(e: BaseException) -> int:
    """2 for settings that do not validate or a key that is no setting (bad usage), 1 for everything
    else handled here."""
    if isinstance(e, UnknownSetting) or isinstance(e, ValidationError) and str(e.title).endswith("Settings"):
        return 2
    return 1


Option = Any  # a Click option of the command (Typer vendors its own Click: typed loosely)
_CTX = "_skysift_ctx"  # the context Typer hands the guarded command (typer has no get_current_context)


def _options(command: Any) -> dict[str, Option]:
    if command is None:
        return {}
    return {p.name: p for p in command.params if getattr(p, "param_type_name", "") == "option" and p.name}


def _flag(opt: Option, value: str | None = None) -> str:
    if value == "False" and opt.secondary_opts:
        return opt.secondary_opts[0]
    longs = [o for o in opt.opts if o.startswith("--")]
    return (longs or opt.opts)[0]


def _option_of(name: str, options: dict[str, Option]) -> Option | None:
    return options.get(name) or options.get(FIELD_TO_OPTION.get(name, ""))


def flagify(text: str, options: dict[str, Option]) -> str:
    """Rewrite Python argument names that are options of the command into their flags."""

    def swap(m: re.Match[str]) -> str:
        name = m["name"]
        opt = _option_of(name, options)
        if opt is None:
            return m[0]
        if m["bool"]:
            return f"{_flag(opt, m['bool'][1:])} ({m[0]})"
        if m["eq"]:
            return f"{_flag(opt)} ({m[0]})"
        if "_" in name:  # a bare one-word name ("catalog", "bands") is as likely plain English
            return f"{_flag(opt)} ({name})"
        return m[0]

    return _NAME.sub(swap, text)


def _validation(e: ValidationError, options: dict[str, Option]) -> str:
    parts = []
    for err in e.errors(include_url=False):
        msg = str(err.get("msg", "invalid"))
        for prefix in ("Value error, ", "Assertion failed, "):
            msg = msg.removeprefix(prefix)
        loc = [str(x) for x in err.get("loc", ()) if isinstance(x, str)]
        if loc:
            opt = _option_of(loc[-1], options)
            where = _flag(opt) if opt is not None else ".".join(loc)
            parts.append(f"{where}: {msg}")
        else:
            parts.append(msg)
    return "; ".join(parts) or str(e)


def message(e: BaseException, command: Any = None) -> str:
    """The one line that names the problem (and the flag that fixes it, when the message names one)."""
    options = _options(command)
    if isinstance(e, ValidationError):
        text = _validation(e, options)
    elif isinstance(e, OSError) and e.filename is not None and e.strerror:
        text = f"{e.filename}: {e.strerror[:1].lower()}{e.strerror[1:]}"
    elif isinstance(e, json.JSONDecodeError):
        text = f"not valid JSON: {e}"
    else:
        text = str(e) or type(e).__name__
    return " ".join(flagify(text, options).split())


def debug_requested(ctx: typer.Context | None) -> bool:
    return bool(ctx is not None and ctx.find_root().params.get("debug"))


def guarded(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    """`fn` (a command) with its handled exceptions turned into one line and an exit code.

    The wrapper's signature is fn's plus a keyword-only typer.Context, which Typer fills in: the
    context says whether --debug was given and which options the command has."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        ctx = kwargs.pop(_CTX, None)
        try:
            return fn(*args, **kwargs)
        except HANDLED as e:
            if debug_requested(ctx):
                raise
            typer.echo(f"skysift {name}: error: {message(e, ctx.command if ctx else None)}", err=True)
            raise typer.Exit(exit_code(e)) from e

    sig = inspect.signature(fn, eval_str=True)
    params = list(sig.parameters.values())
    at = next((i for i, p in enumerate(params) if p.kind is inspect.Parameter.VAR_KEYWORD), len(params))
    params.insert(at, inspect.Parameter(_CTX, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context))
    run.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    return run


def version_text() -> str:
    """`skysift <version of the installed package>` (unknown for a checkout that was never installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"skysift {version('skysift')}"
    except PackageNotFoundError:
        return "skysift unknown (not installed; run `make install`)"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(version_text())
        raise typer.Exit()


def _root(
    debug: Annotated[
        bool, typer.Option("--debug", envvar="SKYSIFT_DEBUG", help="on an error, show the Python traceback")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_show_version, help="print the version and exit")
    ] = False,
) -> None:
    """Self-supervised similarity search for sky surveys."""


def install(app: typer.Typer) -> None:
    """Add the global options (--debug, --version) and wrap every command registered so far."""
    app.callback()(_root)
    for info in app.registered_commands:
        fn = info.callback
        if fn is None:
            continue
        name = info.name or fn.__name__.replace("_", "-")
        info.callback = guarded(fn, name)
