"""SIGKILL `skysift encode` / `skysift index` / `skysift publish` at named and at random points:
`current` always stays on a complete version that validates, no finished shard is lost, and the
next uncrashed run finishes with every object present exactly once (DESIGN.md §3). A publish
killed between its rename into versions/ and the swap of `current` is finished by the next run
of the same job: one version results and no orphan is left.

Named points are `indexer.artifacts.crash_point` calls, armed with SKYSIFT_TEST_CRASH_AT=<name>[:<n>].
Random points are SIGKILLs sent after a random delay drawn from one seeded generator: the seed is
SKYSIFT_CRASH_SEED (default 0, so every run draws the same delays), printed at the start of the test
and named in every failure; set it to explore other points, or to repeat a failing run's.

Cost: starting `python -m skysift.cli` imports torch, timm, galsim, faiss and the app (~7 s of CPU
here, 20-40 s of wall time on a loaded 2-core machine), so only two runs start a fresh
interpreter (the first kill and the last, uncrashed run); the others are children forked from one
pre-imported "zygote" process that runs the same Typer app (`skysift.cli.cli`) with the same argv,
environment and exit codes. Each child is a real process that dies by a real SIGKILL.
SKYSIFT_CRASH_TEST_FRESH=1 starts every run fresh.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from indexer.artifacts import current_dir, current_version, list_versions, orphans
from indexer.encode import n_shards, shard_paths
from indexer.store import IndexedSurvey
from survey.native import NativeSurvey

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
SHARD = 16  # 240 objects -> 15 shards
N_SHARDS = 15

ZYGOTE = r"""
import json, os, sys, traceback
import skysift.cli                                                  # everything `python -m skysift.cli` imports
import indexer.build, indexer.encode, indexer.pipeline, indexer.store  # and what its commands import lazily
print(json.dumps({"ready": os.getpid()}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        log = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.environ.update(req["env"])
        sys.argv = ["skysift", *req["argv"]]
        code = 0
        try:
            skysift.cli.cli(args=req["argv"], prog_name="skysift")
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    print(json.dumps({"pid": pid}), flush=True)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), flush=True)
"""


class Runner:
    """Runs skysift commands in forked children of a warm zygote, or as fresh interpreters."""

    def __init__(self, workdir: Path, fresh_only: bool) -> None:
        self.workdir, self.fresh_only, self.n = workdir, fresh_only, 0
        self.zygote: subprocess.Popen[str] | None = None
        self.log = workdir / "runs.log"
        if not fresh_only:
            self.zygote = subprocess.Popen([PYTHON, "-c", ZYGOTE], cwd=ROOT, stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, text=True, env=self._env({}))
            assert self.zygote.stdout is not None
            assert "ready" in json.loads(self.zygote.stdout.readline())

    def _env(self, extra: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SKYSIFT_")}
        env.update({"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}, **extra)
        return env

    def run(self, argv: list[str], *, crash_at: str | None = None, fresh: bool = False,
            kill: Callable[[], bool] | None = None) -> int:
        """Exit code (-9 when SIGKILLed). `kill`, polled while the child runs, returns True when
        the test wants it SIGKILLed now."""
        self.n += 1
        env = {"SKYSIFT_TEST_CRASH_AT": crash_at} if crash_at else {}
        with open(self.log, "a") as f:
            f.write(f"\n### run {self.n}: skysift {' '.join(argv)}  crash_at={crash_at}\n")
        if fresh or self.fresh_only or self.zygote is None:
            with open(self.log, "a") as f:
                proc = subprocess.Popen([PYTHON, "-m", "skysift.cli", *argv], cwd=ROOT, env=self._env(env),
                                        stdout=f, stderr=subprocess.STDOUT)
                return self._watch(proc.pid, proc.poll, kill, proc.wait)
        assert self.zygote.stdin and self.zygote.stdout
        self.zygote.stdin.write(json.dumps({"argv": argv, "env": env, "log": str(self.log)}) + "\n")
        self.zygote.stdin.flush()
        pid = json.loads(self.zygote.stdout.readline())["pid"]
        done: dict[str, int] = {}

        def wait() -> int:
            if "rc" not in done:
                done["rc"] = json.loads(self.zygote.stdout.readline())["rc"]
            return done["rc"]

        def poll() -> int | None:  # the child is the zygote's: ask the kernel whether it still runs
            try:
                with open(f"/proc/{pid}/stat") as f:
                    return None if f.read().split()[2] not in "ZX" else 0
            except (FileNotFoundError, ProcessLookupError):  # gone between open() and read()
                return 0

        return self._watch(pid, poll, kill, wait)

    @staticmethod
    def _watch(pid: int, poll: Callable[[], int | None], kill: Callable[[], bool] | None,
               wait: Callable[[], int]) -> int:
        while kill is not None and poll() is None:
            if kill():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                break
            time.sleep(0.005)
        return wait()

    def close(self) -> None:
        if self.zygote is not None:
            self.zygote.stdin.close()  # type: ignore[union-attr]
            self.zygote.wait(timeout=30)


def version_names(root: Path) -> list[str]:
    return [v["version"] for v in list_versions(root)]


def check_current(root: Path, expected: str, n: int) -> None:
    """`current` points at `expected`, complete: every file hashes right, counts agree."""
    assert current_version(root) == expected
    store = IndexedSurvey(current_dir(root), check_hashes=True)
    assert store.version == expected and len(store) == n


def check_job(job: Path, n: int) -> set[int]:
    """Every marked shard has a complete .npy with its rows; returns the marked shard numbers."""
    marked = {k for k in range(N_SHARDS) if shard_paths(job, k)[1].exists()}
    for k in marked:
        emb = np.load(shard_paths(job, k)[0])
        assert emb.shape[0] == min((k + 1) * SHARD, n) - k * SHARD and np.isfinite(emb).all()
    return marked


def check_complete(root: Path, survey: Path, reference: np.ndarray) -> None:
    store = IndexedSurvey(current_dir(root), check_hashes=True)
    ids = store.catalog["object_id"].astype(str)
    truth = NativeSurvey(survey).catalog["object_id"].astype(str)
    assert len(set(ids.tolist())) == len(ids) == len(truth)
    assert ids.tolist() == truth.tolist()
    assert store.embeddings.shape[0] == len(truth)
    # each row holds its own object's embedding (no shard written to the wrong rows, none twice)
    np.testing.assert_allclose(np.asarray(store.embeddings, np.float32), reference, atol=2e-2)


def test_sigkill_anywhere_leaves_current_complete_and_the_next_run_finishes(
        tiny_survey: Path, tiny_encoder: Path, tiny_artifacts: Path, tmp_path: Path) -> None:
    seed = int(os.environ.get("SKYSIFT_CRASH_SEED", "0"))
    print(f"SKYSIFT_CRASH_SEED={seed}", flush=True)  # pytest -s shows it; failures name it too
    rng = random.Random(seed)  # every random choice below draws from this one generator
    why = f"(SKYSIFT_CRASH_SEED={seed}; log in {tmp_path / 'runs.log'})"
    root = tmp_path / "artifacts"
    root.mkdir()
    shutil.copytree(tiny_artifacts / "versions", root / "versions")  # an already published version
    v0 = current_version(tiny_artifacts)
    os.symlink(Path("versions") / v0, root / "current")
    reference = np.asarray(IndexedSurvey(current_dir(tiny_artifacts)).embeddings, np.float32)
    n = len(reference)
    assert n_shards(n, SHARD) == N_SHARDS
    job = root / "building" / "crash"
    stage = job / "stage"
    common = ["--survey", str(tiny_survey), "--encoder", str(tiny_encoder), "--artifacts", str(root),
              "--job", "crash", "--shard-size", str(SHARD), "--batch-size", "8", "--device", "cpu"]
    encode, index = ["encode", *common], ["index", *common, "--map-method", "pca"]
    runner = Runner(tmp_path, fresh_only=os.environ.get("SKYSIFT_CRASH_TEST_FRESH") == "1")
    kills: list[str] = []

    def killed(rc: int, what: str) -> None:
        assert rc == -signal.SIGKILL, f"{what}: exit code {rc}, expected SIGKILL {why}"
        kills.append(what)

    def timed(delay_max: float, after: Callable[[], bool]) -> Callable[[], bool]:
        """Kill a random time in [0, delay_max) s after `after()` first holds."""
        delay, start = rng.uniform(0, delay_max), []

        def poll() -> bool:
            if not start:
                if after():
                    start.append(time.monotonic())
                return False
            return time.monotonic() - start[0] >= delay

        return poll

    def n_done() -> int:
        return len(list(job.glob("*.done")))

    try:
        # -- encode: mid-.npy write of shard 0 (a fresh interpreter, like an operator's run)
        killed(runner.run(encode, crash_at="encode.mid_npy", fresh=True), "encode.mid_npy")
        assert (job / "emb-00000.npy.partial").exists() and not shard_paths(job, 0)[0].exists()
        assert check_job(job, n) == set()
        check_current(root, v0, n)

        # -- encode: shard 2's .npy renamed, its marker not yet written
        killed(runner.run(encode, crash_at="encode.before_marker:3"), "encode.before_marker")
        assert check_job(job, n) == {0, 1} and shard_paths(job, 2)[0].exists()
        check_current(root, v0, n)

        # -- encode: right after shard 3's marker (the "kill after a shard" case)
        killed(runner.run(encode, crash_at="encode.after_shard:2"), "encode.after_shard")
        assert check_job(job, n) == {0, 1, 2, 3}
        check_current(root, v0, n)

        # -- encode: three more named points on later shards, so at least 10 kills always land
        # (on an idle machine a random delay can outlast the run it was meant to interrupt)
        killed(runner.run(encode, crash_at="encode.mid_npy:2"), "encode.mid_npy#2")  # shard 5 half written
        assert check_job(job, n) == {0, 1, 2, 3, 4}
        killed(runner.run(encode, crash_at="encode.after_shard:1"), "encode.after_shard#2")  # shard 5 redone
        assert check_job(job, n) == {0, 1, 2, 3, 4, 5}
        killed(runner.run(encode, crash_at="encode.before_marker:2"), "encode.before_marker#2")  # shard 7 unmarked
        assert check_job(job, n) == {0, 1, 2, 3, 4, 5, 6} and shard_paths(job, 7)[0].exists()
        check_current(root, v0, n)
        kept = {k: shard_paths(job, k)[0].stat().st_mtime_ns for k in range(7)}

        # -- encode: two random points once encoding is under way
        for _ in range(2):
            before = n_done()
            rc = runner.run(encode, kill=timed(0.4, lambda b=before: n_done() > b))
            if rc == 0:  # finished before the kill: still a consistent state
                assert check_job(job, n) == set(range(N_SHARDS))
            else:
                killed(rc, "encode@random")
            check_job(job, n)
            check_current(root, v0, n)

        # -- index: encoding resumes and finishes, then the build dies half-way through the stage
        killed(runner.run(index, crash_at="build.mid_stage"), "build.mid_stage")
        assert check_job(job, n) == set(range(N_SHARDS))
        assert {k: shard_paths(job, k)[0].stat().st_mtime_ns for k in range(7)} == kept, "finished shards redone"
        assert stage.exists() and not (stage / "manifest.json").exists()
        check_current(root, v0, n)

        # -- index: every stage file written, no manifest yet; publishing that stage is refused
        killed(runner.run(index, crash_at="build.before_manifest"), "build.before_manifest")
        assert (stage / "map.npy").exists() and not (stage / "manifest.json").exists()
        assert runner.run(["publish", "--stage", str(stage), "--artifacts", str(root)]) == 1
        check_current(root, v0, n)

        # -- index: a random point of the build
        t0 = time.time()
        rc = runner.run(index, kill=timed(0.6, lambda: (stage / "embeddings.npy").exists()
                                          and (stage / "embeddings.npy").stat().st_mtime > t0))
        if rc == 0:  # finished before the kill: a new current version
            v_random = current_version(root)
            check_current(root, v_random, n)
            # the same build again within this second would get the same version name (UTC second
            # + content hash), and the publish below, of a version already current, would not rename
            time.sleep(1.1)
        else:
            killed(rc, "index@random")
            v_random = v0
        check_current(root, v_random, n)

        # -- publish: killed between the rename into versions/ and the swap of current
        assert runner.run([*index, "--no-publish"]) == 0
        assert (stage / "manifest.json").exists()
        killed(runner.run(["publish", "--stage", str(stage), "--artifacts", str(root)],
                          crash_at="publish.after_rename"), "publish.after_rename")
        assert not stage.exists()
        v1 = json.loads((job / "stage.publish.json").read_text())["version"]
        assert (root / "versions" / v1 / "manifest.json").exists()
        check_current(root, v_random, n)
        assert orphans(root) == [v1]
        # ... and re-running the same publish finishes it
        assert runner.run(["publish", "--stage", str(stage), "--artifacts", str(root)]) == 0
        check_current(root, v1, n)
        check_complete(root, tiny_survey, reference)

        # -- index: killed between the rename into versions/ and the swap: the re-run of the same
        # job finishes that publish instead of building another version (no orphan is left).
        # Built within v1's UTC second, the same content would be v1 again (already there: no rename,
        # so no kill); on an idle machine the publish and checks above can take under a second.
        time.sleep(1.1)
        killed(runner.run(index, crash_at="publish.after_rename"), "index publish.after_rename")
        v2 = json.loads((job / "stage.publish.json").read_text())["version"]
        check_current(root, v1, n)
        assert orphans(root) == [v2]
        before = set(version_names(root))
        assert runner.run(index) == 0
        check_current(root, v2, n)
        assert set(version_names(root)) == before and orphans(root) == [], "the re-run built another version"
        assert not (job / "stage.publish.json").exists()

        # -- index: killed with the new link made but not yet renamed over current; the re-run
        # finishes this publish too (built in v2's second it would be v2 again: see above)
        time.sleep(1.1)
        killed(runner.run(index, crash_at="publish.before_swap"), "publish.before_swap")
        assert list(root.glob(".current.*.tmp"))
        check_current(root, v2, n)
        v3 = json.loads((job / "stage.publish.json").read_text())["version"]
        assert orphans(root) == [v3]
        before = set(version_names(root))
        assert runner.run(index) == 0
        check_current(root, v3, n)
        assert set(version_names(root)) == before and orphans(root) == []

        # -- index: a random point anywhere in build + publish
        t0 = time.time()
        rc = runner.run(index, kill=timed(1.5, lambda: (stage / "embeddings.npy").exists()
                                          and (stage / "embeddings.npy").stat().st_mtime > t0))
        v_last = current_version(root)
        if rc != 0:
            killed(rc, "index@random")
            assert v_last == v3
        check_current(root, v_last, n)

        # -- the next uncrashed run (a fresh interpreter) finishes: every object exactly once
        assert runner.run(index, fresh=True) == 0, (runner.log.read_text()[-3000:], why)
        v_final = current_version(root)
        assert v_final not in (v0, v1, v2)
        check_current(root, v_final, n)
        check_complete(root, tiny_survey, reference)
        assert not list(root.glob(".current.*.tmp")), "stale link left by the killed publish"
        assert orphans(root) == [], "a killed publish left a version nothing made current"
    finally:
        runner.close()
    # 11 named points always kill; the 4 random ones kill unless the run finished first
    assert len(kills) >= 11, (kills, why)
    print(f"{len(kills)} kills: {kills} {why}")


@pytest.mark.parametrize("point", ["encode.mid_npy", "publish.after_rename"])
def test_crash_points_do_nothing_unless_armed(point: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from indexer.artifacts import crash_point

    monkeypatch.delenv("SKYSIFT_TEST_CRASH_AT", raising=False)
    crash_point(point)
    monkeypatch.setenv("SKYSIFT_TEST_CRASH_AT", "some.other.point")
    crash_point(point)  # still alive
