"""`skysift serve`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer


def serve(
    artifacts: Annotated[Path, typer.Option(help="artifacts root with current -> versions/<v>")] = Path("artifacts"),
    host: str = "127.0.0.1",
    port: int = 8000,
    survey_root: Annotated[Path | None, typer.Option(help="override the survey path in the manifest")] = None,
) -> None:
    """Serve the API and the explorer page."""
    import uvicorn

    from .main import create_app
    from .settings import ServiceSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = ServiceSettings(artifacts=artifacts, host=host, port=port, survey_root=survey_root)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
