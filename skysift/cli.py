"""skysift: simulate | ingest | train | encode | index | publish | versions | serve | evaluate | demo.

    skysift --help
    torchrun --nproc_per_node=2 -m skysift.cli train ...
"""

from __future__ import annotations

import typer

import app.cli
import indexer.cli
import survey.cli
import training.cli

from . import demo

cli = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False,
                  help="Self-supervised similarity search for sky surveys.")
for module in (survey.cli, training.cli, indexer.cli, app.cli, demo):
    module.register(cli)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
