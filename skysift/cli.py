"""skysift: simulate | ingest | train | finetune | encode | index | publish | versions | export-hats | serve |
evaluate | demo.

    skysift --help
    skysift --version
    torchrun --nproc_per_node=2 -m skysift.cli train ...

Each package's cli.py imports only typer, rich and settings at the top and its heavy modules
(torch, GalSim, FAISS, the app) inside the commands, so `skysift --help` starts in well under a
second (tests/test_cli.py checks that none of them is imported by `import skysift.cli`).
"""

from __future__ import annotations

import os

# Idle OpenMP threads that spin starve every other process on a shared host (measured: 2-4x
# slower inference and training on 2 busy cores); sleeping costs nothing measurable on our paths.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import typer  # noqa: E402

import app.cli  # noqa: E402
import evaluation.cli  # noqa: E402
import indexer.cli  # noqa: E402
import indexer.export_cli  # noqa: E402
import survey.cli  # noqa: E402
import training.cli  # noqa: E402

from . import config, demo, errors  # noqa: E402

cli = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False,
                  help="Self-supervised similarity search for sky surveys.")
for module in (survey.cli, training.cli, indexer.cli, indexer.export_cli, evaluation.cli, app.cli, demo):
    module.register(cli)
config.install(cli)  # --config, --set, --print-settings on every command that builds a settings object
errors.install(cli)  # --debug, and one line naming the flag (exit 1, bad usage 2) instead of a traceback


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
