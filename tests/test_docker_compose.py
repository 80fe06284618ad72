"""After `make demo`, `docker compose up` serves the demo: the compose file's mounts and the
paths its services are given lead back to the folders `make demo` writes (Makefile -> `skysift
demo`'s own defaults), so the served version comes with its own cutouts.

The compose file is read as YAML (PyYAML, which schemathesis in the dev extras requires) with
Compose's `${VAR:-default}` interpolation done here for an empty environment: what a plain
`docker compose up` runs."""

from __future__ import annotations

import inspect
import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from skysift import demo

ROOT = Path(__file__).resolve().parents[1]


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR-default} (the forms the file uses)."""

    def sub(m: re.Match[str]) -> str:
        name, op, default = m["name"], m["op"], m["default"] or ""
        if op == ":-":
            return env.get(name) or default
        if op == "-":
            return env.get(name, default)
        return env.get(name, "")

    return re.sub(r"\$\{(?P<name>\w+)(?:(?P<op>:?-)(?P<default>[^}]*))?\}", sub, value)


def service(name: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    s = compose["services"][name]
    env = env or {}
    return {**s, "command": [interpolate(str(a), env) for a in s["command"]],
            "volumes": [interpolate(str(v), env) for v in s["volumes"]]}


def option(argv: list[str], flag: str) -> str:
    assert flag in argv, (flag, argv)
    return argv[argv.index(flag) + 1]


def host_path(container: str, volumes: list[str]) -> Path:
    """The host folder (relative to the repository) that a container path lies in, by the mounts."""
    best: tuple[int, Path] | None = None
    for v in volumes:
        host, target = v.split(":")[:2]
        target_p, path = PurePosixPath(target), PurePosixPath(container)
        if path == target_p or target_p in path.parents:
            rel = path.relative_to(target_p)
            if best is None or len(target_p.parts) > best[0]:
                best = (len(target_p.parts), Path(host) / rel)
    assert best is not None, f"{container} is in no mounted volume: {volumes}"
    return Path(*best[1].parts)  # "./data/demo" -> "data/demo"


def demo_writes() -> dict[str, Path]:
    """The survey folder and artifacts root `make demo` writes: its recipe's options, else `skysift demo`'s defaults."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = lines.index(next(line for line in lines if line.startswith("demo:")))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    argv = next(shlex.split(line) for line in recipe if " demo" in line and "skysift" in line)
    argv = argv[argv.index("demo") + 1:]
    defaults = inspect.signature(demo.demo).parameters
    out = {}
    for name in ("data", "artifacts"):
        flag = f"--{name}"
        out[name] = Path(argv[argv.index(flag) + 1]) if flag in argv else Path(defaults[name].default)
    return out


def test_compose_up_serves_the_artifacts_and_survey_that_make_demo_writes() -> None:
    wrote = demo_writes()
    assert wrote == {"data": Path("data/demo"), "artifacts": Path("artifacts")}  # what the docs say
    s = service("skysift")
    argv = s["command"]
    assert argv[:2] == ["skysift", "serve"]
    assert host_path(option(argv, "--artifacts"), s["volumes"]) == wrote["artifacts"]
    # the manifest records the survey's host path, which the container lacks: the served survey root
    # must be the demo's folder as mounted (it was /srv/data/sim while `make demo` wrote data/demo)
    assert host_path(option(argv, "--survey-root"), s["volumes"]) == wrote["data"]


def test_the_gpu_jobs_work_on_the_survey_that_is_served() -> None:
    served = service("skysift")
    survey = host_path(option(served["command"], "--survey-root"), served["volumes"])
    for name in ("train", "index"):
        s = service(name)
        assert host_path(option(s["command"], "--survey"), s["volumes"]) == survey, name
    index = service("index")
    assert host_path(option(index["command"], "--artifacts"), index["volumes"]) == \
        host_path(option(served["command"], "--artifacts"), served["volumes"])


def test_survey_dir_picks_another_survey_for_every_service() -> None:
    env = {"SURVEY_DIR": "sim"}
    s = service("skysift", env)
    assert host_path(option(s["command"], "--survey-root"), s["volumes"]) == Path("data/sim")
    t = service("train", env)
    assert host_path(option(t["command"], "--survey"), t["volumes"]) == Path("data/sim")
