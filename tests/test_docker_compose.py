"""After `make demo`, `docker compose up` serves the demo: the compose file's mounts and the
paths its services are given lead back to the folders `make demo` writes (Makefile -> `skysift
demo`'s own defaults), so the served version comes with its own cutouts.

The compose file is read as YAML (PyYAML, which schemathesis in the dev extras requires) with
Compose's `${VAR:-default}` interpolation done here for an empty environment: what a plain
`docker compose up` runs."""

from __future__ import annotations

import inspect
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
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


# ---------------------------------------------------------------- --profile milvus

MILVUS_SERVICES = {"milvus-etcd", "milvus-minio", "milvus-standalone", "index-milvus", "skysift-milvus"}


def compose_file() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def healthy_dependencies(s: dict[str, Any]) -> set[str]:
    """The services `s` waits for until their healthcheck passes (depends_on: {x: {condition: service_healthy}})."""
    deps = s.get("depends_on", {})
    assert isinstance(deps, dict), f"depends_on as a list waits for nothing but the start: {deps}"
    return {name for name, how in deps.items() if how == {"condition": "service_healthy"}}


def host_port(address: str) -> tuple[str, int]:
    host, port = address.rsplit("//", 1)[-1].rsplit(":", 1)
    return host, int(port)


def test_the_milvus_profile_is_milvus_standalone_with_its_etcd_and_minio() -> None:
    services = compose_file()["services"]
    in_profile = {name for name, s in services.items() if "milvus" in s.get("profiles", [])}
    assert in_profile == MILVUS_SERVICES
    assert "profiles" not in services["skysift"]  # a plain `docker compose up` is unchanged
    for name in ("milvus-etcd", "milvus-minio", "milvus-standalone"):
        image = services[name]["image"]
        assert re.search(r":[\w.-]*\d[\w.-]*$", image), f"{name}: unpinned {image}"  # a version in the tag
        assert not image.endswith(":latest")
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    milvus = services["milvus-standalone"]
    assert milvus["command"] == ["milvus", "run", "standalone"]
    env = milvus["environment"]
    # Milvus finds its stores by service name, on the ports they listen on
    assert host_port(env["ETCD_ENDPOINTS"]) == ("milvus-etcd", 2379)
    assert "-listen-client-urls=http://0.0.0.0:2379" in services["milvus-etcd"]["command"]
    assert host_port(env["MINIO_ADDRESS"]) == ("milvus-minio", 9000)
    assert "/minio_data" in services["milvus-minio"]["command"]
    assert "http://localhost:9000/minio/health/live" in services["milvus-minio"]["healthcheck"]["test"]
    # it starts once both stores answer, and is healthy once its own /healthz does
    assert healthy_dependencies(milvus) == {"milvus-etcd", "milvus-minio"}
    assert "http://localhost:9091/healthz" in milvus["healthcheck"]["test"]
    assert "19530:19530" in milvus["ports"]
    volumes = compose_file()["volumes"]
    for name in ("milvus-etcd", "milvus-minio", "milvus-standalone"):
        for v in services[name]["volumes"]:
            assert v.split(":")[0] in volumes, f"{name}: {v} is not a named volume"


def test_skysift_milvus_serves_the_same_version_from_milvus(monkeypatch: Any) -> None:
    from app.settings import ServiceSettings

    services = compose_file()["services"]
    plain, variant = services["skysift"], services["skysift-milvus"]
    env = {k: str(v) for k, v in variant["environment"].items()}
    assert env["SKYSIFT_BACKEND"] == "milvus"
    assert env["SKYSIFT_MILVUS_URI"] == "http://milvus-standalone:19530"
    assert host_port(env["SKYSIFT_MILVUS_URI"]) == ("milvus-standalone", 19530)
    # the names are the service's settings: `skysift serve` in the container reads them
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = ServiceSettings()
    assert (settings.backend, settings.milvus_uri) == ("milvus", "http://milvus-standalone:19530")
    # otherwise the plain service: same command, mounts and votes, so it serves the same artifacts and cutouts
    assert variant["command"] == plain["command"] and variant["volumes"] == plain["volumes"]
    assert {k: v for k, v in env.items() if not k.startswith("SKYSIFT_") or k == "SKYSIFT_VOTES_DB"} == \
        plain["environment"]
    assert healthy_dependencies(variant) == {"milvus-standalone"}
    assert variant["build"]["args"] == {"EXTRAS": "scale"}
    assert variant["ports"] != plain["ports"]  # both can run at once


def test_index_milvus_indexes_the_served_survey_with_the_demo_encoder_into_milvus() -> None:
    from typer.testing import CliRunner

    from indexer.settings import IndexSettings
    from skysift.cli import cli

    services = compose_file()["services"]
    index = service("index-milvus")
    argv = index["command"]
    assert argv[:2] == ["skysift", "index"]
    assert option(argv, "--backend") == "milvus"
    uri = option(argv, "--milvus-uri")
    assert uri == services["skysift-milvus"]["environment"]["SKYSIFT_MILVUS_URI"]
    served = service("skysift")
    for flag in ("--survey", "--artifacts"):
        theirs = "--survey-root" if flag == "--survey" else flag
        assert host_path(option(argv, flag), index["volumes"]) == \
            host_path(option(served["command"], theirs), served["volumes"]), flag
    assert host_path(option(argv, "--encoder"), index["volumes"]) == Path(inspect.signature(demo.demo)
                                                                          .parameters["runs"].default) / "encoder"
    assert healthy_dependencies(index) == {"milvus-standalone"}
    assert index["build"]["args"] == {"EXTRAS": "scale"}
    # the flags are `skysift index`'s, and the settings accept what they say
    helped = CliRunner().invoke(cli, ["index", "--help"], terminal_width=200)
    assert helped.exit_code == 0 and "--backend" in helped.output and "--milvus-uri" in helped.output
    s = IndexSettings(survey=Path("s"), encoder=Path("e"), backend=option(argv, "--backend"), milvus_uri=uri)
    assert (s.backend, s.milvus_uri) == ("milvus", "http://milvus-standalone:19530")


def test_the_scale_image_installs_pymilvus() -> None:
    import tomllib

    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert 'ARG EXTRAS=""' in dockerfile and 'RUN pip install ".${EXTRAS:+[$EXTRAS]}"' in dockerfile
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(re.match(r"pymilvus\b", d) for d in extras["scale"])


COMPOSE_MISSING = ("no Compose binary: neither `docker compose` nor `docker-compose` runs here (Debian: "
                   "`apt-get install -y docker-compose`, which `make test` does; no Docker engine is needed)")


def compose_binary() -> list[str] | None:
    for argv in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(argv[0]) and subprocess.run([*argv, "version"], capture_output=True).returncode == 0:
            return argv
    return None


@pytest.mark.parametrize("profiles", [[], ["milvus"], ["gpu", "milvus"]])
def test_compose_itself_accepts_the_file(profiles: list[str]) -> None:
    """Compose's own schema and checks (unknown keys, undefined dependencies, bad healthchecks), with the
    profiles switched on; `config` parses only, no engine is contacted."""
    binary = compose_binary()
    assert binary is not None, COMPOSE_MISSING
    flags = [a for p in profiles for a in ("--profile", p)]
    env = {k: v for k, v in os.environ.items() if k not in ("SURVEY_DIR", "ENCODER_RUN")}
    run = subprocess.run([*binary, *flags, "config", "-q"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
