"""Helpers shared by the benchmark scripts in bench/.

Every benchmark records where and from which code it ran (machine, git SHA, date, command line),
writes one JSON file under bench/results/, and most render a Markdown table from that JSON into a
doc between two marker comments. Each script used to carry its own copy of that boilerplate, and
the copies had drifted apart (how the CPU model is read, what "dirty" means, what happens when a
marker is missing); they live here once so that a fix reaches every benchmark.

What stays in the scripts on purpose: the *shape* of each script's ``machine`` dict, its date
format and its git-SHA format. They are part of the JSON each script writes, and the files already
in bench/results/ were written with them and are still rendered into docs/ by the scripts'
``--markdown`` / ``--render`` / ``--docs`` / ``--table-only`` modes. So the helpers take the
differences as arguments instead of unifying them: one schema per script, old and new results alike.

Importing: the scripts run as ``.venv/bin/python bench/<script>.py``, so bench/ is ``sys.path[0]``
and ``from _common import ...`` finds this file. Importing it also puts the repository root on
``sys.path``, so the project's packages import without the editable install.

No heavy imports at module level (numpy, torch, faiss): bench_encode, bench_index_types and
bench_service_load import this module *before* they set OMP_WAIT_POLICY (``prefer_passive_omp``),
which only takes effect if nothing has loaded libgomp yet.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def prefer_passive_omp() -> None:
    """Make OpenMP threads sleep, not spin, while they wait, unless the environment already chose.

    Why: libgomp's worker threads spin between parallel regions. On the 2-core machine these
    benchmarks share with other jobs, a spinning thread steals the core its partner needs: 2-thread
    FAISS calls ran 4-10x slower than 1-thread ones (k-means training 9.1 s vs 1.9 s, Flat single
    query 16 ms vs 1.4 ms at 20k x 128), and 2-thread CPU inference in torch reached ~40 % of its
    CPU efficiency. libgomp reads the policy once, when torch or FAISS loads it, so call this before
    importing either. Export OMP_WAIT_POLICY=ACTIVE to measure the difference.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def log(*parts: object) -> None:
    """Progress to stderr, flushed: stdout is left to the results (JSON or Markdown) so that it can be
    redirected, and a long benchmark shows where it is while it runs."""
    print(*parts, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- machine


def cpu_model(default: str = "unknown") -> str:
    """The CPU's "model name" from /proc/cpuinfo (platform.processor() is often empty or just the
    architecture on Linux); ``default`` where there is no such file or line."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return default


def memory_gb() -> float | None:
    """Total RAM in GiB (MemTotal of /proc/meminfo, one decimal); None where it cannot be read.
    Recorded because index size and page-cache effects depend on it."""
    try:
        kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return round(kib / 2**20, 1)


def cpus_usable() -> int | None:
    """CPUs this process may run on (its affinity mask, which a container or taskset can make
    smaller than os.cpu_count()); None where the platform cannot say."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def versions(*modules: Any) -> dict[str, str]:
    """``{module name: module.__version__}``, for the libraries whose speed a benchmark measures."""
    return {m.__name__: m.__version__ for m in modules}


def host_machine(**extra: Any) -> dict[str, Any]:
    """``{"host", "cpu", "cores"}`` then ``extra`` in the order given: the head of the ``machine``
    dict of bench_encode, bench_train and bench_explorer (their docs tables read these keys)."""
    return {"host": platform.node(), "cpu": cpu_model(platform.processor() or ""), "cores": os.cpu_count(),
            **extra}


def torch_machine(**extra: Any) -> dict[str, Any]:
    """``host_machine`` plus torch's intra-op threads and version and the Python version, then
    ``extra``: what the torch benchmarks (bench_encode, bench_train) record. Imports torch, so call
    it only from scripts that have already set up their OpenMP environment."""
    import torch

    return host_machine(torch_threads=torch.get_num_threads(), torch=torch.__version__,
                        python=platform.python_version(), **extra)


def platform_machine(**extra: Any) -> dict[str, Any]:
    """``{"platform", "python", "cpu_model", "cpu_count"}`` then ``extra`` in the order given: the
    head of the ``machine`` dict of bench_simulate, bench_index_types and bench_service_load."""
    return {"platform": platform.platform(), "python": platform.python_version(), "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(), **extra}


# ---------------------------------------------------------------- provenance


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()


def git_head(short: bool = False) -> str | None:
    """The commit checked out (abbreviated with ``short``), or None outside a git checkout."""
    try:
        return _git("rev-parse", *(["--short"] if short else []), "HEAD") or None
    except (OSError, subprocess.CalledProcessError):
        return None


def git_dirty(paths: Sequence[str] = (), untracked: bool = True) -> bool:
    """Whether the tree (or only ``paths``) differs from HEAD, untracked files included unless
    ``untracked`` is False. True when git cannot tell: a result should not claim to come from a
    clean commit it cannot vouch for."""
    cmd = ["status", "--porcelain", *([] if untracked else ["--untracked-files=no"])]
    try:
        return bool(_git(*cmd, *(["--", *paths] if paths else [])))
    except (OSError, subprocess.CalledProcessError):
        return True


def git_sha(short: bool = False, paths: Sequence[str] = (), mark: str = "-dirty", unknown: str = "unknown") -> str:
    """HEAD with ``mark`` appended when ``git_dirty(paths)``, or ``unknown`` outside a checkout: which
    code a result came from. The spelling is per script (short or full SHA, "-dirty" or "+dirty",
    the whole tree or only the files a benchmark measures) and is kept so that a script's old and
    new results read alike."""
    head = git_head(short)
    if head is None:
        return unknown
    return head + (mark if git_dirty(paths) else "")


def utc_now_iso() -> str:
    """Now in UTC as ISO 8601 to the second, e.g. 2025-01-31T12:34:56+00:00."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def utc_now_minutes() -> str:
    """Now in UTC to the minute, e.g. 2025-01-31 12:34 UTC (the date format of the scripts whose docs
    tables print the date as stored)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def command_line(python: str | None = None, script: str | None = None) -> str:
    """The command that made a result, shell-quoted so that it can be pasted to rerun it: ``python``
    (default: the interpreter's file name) then ``script`` (default: sys.argv[0] as given) and the
    arguments. Scripts that show the command in docs pass a fixed, repository-relative spelling."""
    return f"{python or Path(sys.executable).name} {shlex.join([script or sys.argv[0], *sys.argv[1:]])}"


# ---------------------------------------------------------------- timing


def sync_device(device: Any) -> None:
    """Wait for queued CUDA work before reading a clock (CUDA calls return before the GPU is done);
    nothing to wait for on the CPU."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def latency_summary(ms: Sequence[float], qs: Sequence[int] = (50, 90, 99),
                    ndigits: int | None = None) -> dict[str, float]:
    """``{"p<q>_ms": ..., "mean_ms": ...}`` of latencies in milliseconds (numpy's default, linear
    percentiles), rounded to ``ndigits`` if given. Tails matter as much as the median for a
    service, so every latency benchmark reports the same percentile keys."""
    import numpy as np

    a = np.asarray(ms, dtype=float)

    def r(x: float) -> float:
        return round(x, ndigits) if ndigits is not None else x

    return {**{f"p{q}_ms": r(float(np.percentile(a, q))) for q in qs}, "mean_ms": r(float(a.mean()))}


def median_min_max(values: Sequence[float]) -> dict[str, float]:
    """``{"median", "min", "max"}`` over repeats: the median is the result, the range shows how much
    the other jobs on the shared machine moved it."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


# ---------------------------------------------------------------- output


def require_measured(bench: str, **counts: float | None) -> None:
    """Stop the benchmark (exit 1, one line on stderr, no JSON written) when a count it measured is
    zero, missing or NaN: a run that timed nothing (a server that never answered, an empty survey)
    must not leave a result of zeros that reads as a measurement, or as a target met."""
    empty = {k: v for k, v in counts.items() if v is None or v != v or v <= 0}
    if empty:
        what = ", ".join(f"{k}={v}" for k, v in empty.items())
        raise SystemExit(f"{bench}: error: nothing measured ({what}); no results written")




def write_json(path: Path, result: dict[str, Any]) -> None:
    """Write a result as indented JSON with a final newline (the form of bench/results/*.json, so
    that a rerun diffs cleanly), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


def fill_markers(doc: Path, begin: str, end: str, body: str, append: bool = False) -> None:
    """Replace what stands between the ``begin`` and ``end`` marker lines of ``doc`` with ``body``,
    keeping the markers and everything around them: generated tables live inside hand-written docs
    and are regenerated from the JSON without touching the prose. Where the markers are missing
    (or the doc is), ``append`` adds the block at the end; otherwise it stops with a message, for
    docs whose table has a fixed place."""
    block = f"{begin}\n{body}\n{end}"
    text = doc.read_text() if doc.exists() else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    elif append:
        text = text.rstrip() + "\n\n" + block + "\n"
    else:
        raise SystemExit(f"{doc}: markers {begin!r} ... {end!r} not found")
    doc.write_text(text)
