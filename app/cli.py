"""`skysift serve`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer


def serve(
    artifacts: Annotated[Path, typer.Option(help="artifacts root with current -> versions/<v>")] = Path("artifacts"),
    host: str = "127.0.0.1",
    port: int = 8000,
    survey_root: Annotated[Path | None, typer.Option(help="override the survey path in the manifest")] = None,
    workers: Annotated[int, typer.Option(min=1, help="worker processes (one per core serves the most requests/s)")] = 1,
    backend: Annotated[str | None, typer.Option(
        help="vector engine: faiss (default) or milvus (the version's collection; SKYSIFT_BACKEND)")] = None,
    milvus_uri: Annotated[str | None, typer.Option(
        help="Milvus server URL or Lite .db file (default: what the build recorded; SKYSIFT_MILVUS_URI)")] = None,
) -> None:
    """Serve the API and the explorer page.

    Other settings (admin token, upload limits, ...) come from SKYSIFT_* environment variables.
    """
    import uvicorn

    from indexer.artifacts import check_root

    from .main import configure_logging, create_app, limit_search_threads
    from .settings import ServiceSettings

    given = {k: v for k, v in {"backend": backend, "milvus_uri": milvus_uri}.items() if v is not None}
    settings = ServiceSettings(artifacts=artifacts, host=host, port=port, survey_root=survey_root, workers=workers,
                               **given)  # type: ignore[arg-type]  # pydantic checks the backend's name
    if settings.backend == "milvus" and settings.workers > 1 and (settings.milvus_uri or "").endswith(".db"):
        raise ValueError(f"--milvus-uri {settings.milvus_uri}: a Milvus Lite file admits one process; serve it "
                         "with --workers 1, or run `milvus-lite server --data-dir DIR` and pass its http:// URL")
    # A wrong path is refused here, in one line, rather than served as "nothing published" forever;
    # an empty root is allowed (the service waits for the first `skysift index` to publish).
    check_root(settings.artifacts, allow_empty=True)
    if settings.survey_root is not None and not Path(settings.survey_root).is_dir():
        raise NotADirectoryError(f"--survey-root {settings.survey_root}: no such folder (the survey whose cutouts "
                                 "the service shows; default: the path recorded in the version's manifest)")
    if not (Path(settings.artifacts) / "current").exists():
        typer.echo(f"skysift serve: nothing published under {settings.artifacts} yet; /readyz answers 503 until "
                   "`skysift index` publishes a version", err=True)
    configure_logging()
    if settings.workers == 1:
        limit_search_threads(settings.search_threads)
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
        return
    # Several processes: each worker rebuilds the same settings from the environment.
    os.environ.update({f"SKYSIFT_{k.upper()}": str(v) for k, v in settings.model_dump(exclude_none=True).items()})
    uvicorn.run("app.main:create_app_from_env", factory=True, host=settings.host, port=settings.port,
                workers=settings.workers, log_level="info")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
