"""`skysift serve`.

    skysift serve --artifacts artifacts --workers 4
    skysift serve --config service.toml --set max_k=50 --set admin_token=...   # any ServiceSettings field
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import typer


def serve(
    artifacts: Annotated[Path | None, typer.Option(help="artifacts root with current -> versions/<v>")] = None,
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
    survey_root: Annotated[Path | None, typer.Option(help="override the survey path in the manifest")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, help="worker processes (one per core serves the most requests/s)")] = None,
    backend: Annotated[Literal["faiss", "milvus"] | None, typer.Option(
        help="vector engine: faiss (default) or milvus (the version's collection; SKYSIFT_BACKEND)")] = None,
    milvus_uri: Annotated[str | None, typer.Option(
        help="Milvus server URL or Lite .db file (default: what the build recorded; SKYSIFT_MILVUS_URI)")] = None,
    *,
    settings: Callable[..., Any],
) -> None:
    """Serve the API and the explorer page.

    Every ServiceSettings field (admin token, upload limits, ...; app/settings.py) can also come from
    --set, --config or a SKYSIFT_* variable. With --workers N the resolved settings reach the workers
    as one JSON file (SKYSIFT_SETTINGS_FILE), not as variables.
    """
    import uvicorn

    from indexer.artifacts import check_root

    from .main import SETTINGS_FILE, configure_logging, create_app, limit_search_threads
    from .settings import ServiceSettings

    s: ServiceSettings = settings(ServiceSettings, {
        "artifacts": artifacts, "host": host, "port": port, "survey_root": survey_root, "workers": workers,
        "backend": backend, "milvus_uri": milvus_uri})
    if s.backend == "milvus" and s.workers > 1 and (s.milvus_uri or "").endswith(".db"):
        raise ValueError(f"--milvus-uri {s.milvus_uri}: a Milvus Lite file admits one process; serve it "
                         "with --workers 1, or run `milvus-lite server --data-dir DIR` and pass its http:// URL")
    # A wrong path is refused here, in one line, rather than served as "nothing published" forever;
    # an empty root is allowed (the service waits for the first `skysift index` to publish).
    check_root(s.artifacts, allow_empty=True)
    if s.survey_root is not None and not Path(s.survey_root).is_dir():
        raise NotADirectoryError(f"--survey-root {s.survey_root}: no such folder (the survey whose cutouts "
                                 "the service shows; default: the path recorded in the version's manifest)")
    if not (Path(s.artifacts) / "current").exists():
        typer.echo(f"skysift serve: nothing published under {s.artifacts} yet; /readyz answers 503 until "
                   "`skysift index` publishes a version", err=True)
    configure_logging()
    if s.workers == 1:
        limit_search_threads(s.search_threads)
        uvicorn.run(create_app(s), host=s.host, port=s.port, log_level="info")
        return
    # Several processes: each worker reads the same resolved settings from one file (0600: it may hold
    # the admin and write tokens), named by one variable, removed when the server stops.
    fd, path = tempfile.mkstemp(prefix="skysift-serve-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(s.model_dump_json())
        os.environ[SETTINGS_FILE] = path
        uvicorn.run("app.main:create_app_from_env", factory=True, host=s.host, port=s.port,
                    workers=s.workers, log_level="info")
    finally:
        os.environ.pop(SETTINGS_FILE, None)
        Path(path).unlink(missing_ok=True)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
