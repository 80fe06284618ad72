"""Every benchmark in bench/ runs end to end at a tiny size and writes a JSON whose measurements are
not zero, so a benchmark that hangs, crashes or measures nothing fails the suite (STYLE.md §8, §11).

Each run is the script as an operator starts it (`python bench/<script>.py ...`), in a fresh
process with a time limit, writing its JSON into the test's tmp folder, never bench/results/.
The sizes are the smallest that still exercise every phase of the script; the numbers mean
nothing at that size, only that they were measured. Scripts with a GPU path run it on the CPU
(bench_train --gpu-path: bf16 autocast + channels-last; bench_encode --device cpu).

Cost: the runs start together, three at a time (most of a tiny run is interpreter start-up, a
server starting and closed-loop waits), after the suite's tiny survey, encoder and version
(tests/conftest.py, shared with the rest of the suite). `pytest -s` prints each run's seconds.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))  # the scripts import their helpers as `from _common import ...`


TINY_BACKBONE = '{"channels":[8,16,32,64],"stem_width":8}'  # bench_real_retrieval splits --train-args as a shell would


@dataclass(frozen=True)
class Fixtures:
    """The suite's tiny simulated survey, encoder and published version (tests/conftest.py), shared
    read-only, and a labels CSV of the survey's classes (object_id, class)."""

    survey: Path
    encoder: Path
    artifacts: Path
    labels: Path


@dataclass
class Smoke:
    script: str
    args: Callable[[Path, Fixtures], list[str]]  # tmp folder, fixtures -> arguments; the JSON goes to tmp/out.json
    check: Callable[[dict[str, Any]], None]  # the JSON: its measurements are not zero
    timeout_s: float = 120.0  # generous: a loaded 2-core machine runs them 3-4x slower; a hang still ends
    result: str = "out.json"  # the JSON's name in the tmp folder
    defaults: tuple[str, ...] = ()  # what the script writes without these arguments: must stay untouched


def positive(*values: Any) -> None:
    for v in values:
        assert isinstance(v, int | float) and not isinstance(v, bool) and v == v and v > 0, values


def check_service_load(res: dict[str, Any]) -> None:
    m = res["metrics"]
    positive(m["requests_per_s"], m["lone_p50_ms"], m["loaded_p50_ms"], m["bare_search_p50_ms"])
    assert m["errors"] == 0
    phases = res["phases"]["1 worker"]
    answered = sum(p["requests"] for p in phases["latency"] + phases["throughput"])
    positive(answered)
    # the access log is on and went to a file: more than a pipe's 64 KB of it, and the run finished
    assert res["settings"]["access_log"].startswith("on")
    log = Path(phases["server_log"])
    assert phases["access_log_lines"] >= answered and log.stat().st_size > 64 * 1024


def check_quality(res: dict[str, Any]) -> None:
    positive(res["n_objects"], res["objects_per_s"], res["top"]["artifacts"])
    assert {"quality", "embedding_anomaly", "combined", "sharp", "haze"} <= set(res["auroc"])
    for row in res["auroc"].values():
        assert all(0.0 <= v <= 1.0 for v in row.values()) and "all artifacts" in row


def check_vote_rounds(res: dict[str, Any]) -> None:
    positive(res["n_objects"], res["n_lenses"])
    methods = {"learned_from_votes", "seeds_only", "similarity_to_found", "lof", "astronomaly"}
    assert set(res["runs"]) == {"5", "10"}
    for votes, rows in res["runs"].items():
        assert [r["round"] for r in rows] == [0, 1, 2]
        assert [r["votes"] for r in rows] == [0, int(votes), 2 * int(votes)]
        for r in rows:
            assert set(r["recall"]) == methods == set(r["lenses_voted"])
            assert all(0.0 <= v <= 1.0 for v in r["recall"].values())
            best = max(v for k, v in r["recall"].items() if k != "learned_from_votes")
            assert r["learned_at_least_best_baseline"] == (r["recall"]["learned_from_votes"] >= best)
        # before any vote nothing is voted; every lens voted stays found
        assert all(v == 0 for v in rows[0]["lenses_voted"].values())
        for name in methods:
            assert rows[2]["lenses_voted"][name] >= rows[1]["lenses_voted"][name]
            for r in rows:  # the lenses voted head the list measured
                found = round(r["recall"][name] * res["lenses_beyond_seeds"])
                assert found >= min(res["settings"]["k"], r["lenses_voted"][name])


def check_vote_retrain(res: dict[str, Any]) -> None:
    secs = res["seconds"]
    positive(secs["built_score"]["median"], secs["learned_from_votes"]["median"], secs["seed_similarity"]["median"],
             secs["learned_streaming_nothing_kept"]["median"], res["ratio_learned_to_seed_similarity"],
             *res["seconds_per_version_once"].values(), *res["retrain_seconds_each"])
    assert len(res["retrain_seconds_each"]) == res["settings"]["repeats"] and res["rebuilt_equal"] is True


def check_encode(res: dict[str, Any]) -> None:
    m = res["metrics"]
    positive(res["settings"]["n_objects"], m["bare_objects_per_s"], m["e2e_objects_per_s"],
             m["baseline_objects_per_s"], m["read_objects_per_s"], m["stretch_objects_per_s"], m["ratio_e2e_to_bare"])


def check_explorer(res: dict[str, Any]) -> None:
    m = res["metrics"]
    positive(res["repeats"], *(m[k]["median"] for k in ("map_drawn_ms", "map_fetch_ms", "map_first_frame_ms",
                                                       "map_frame_median_ms", "map_frames", "grid_rendered_ms",
                                                       "grid_images_ms")))


def check_index_types(res: dict[str, Any]) -> None:
    factories = " ".join(r["factory"] for r in res["results"])
    assert all(kind in factories for kind in ("Flat", "HNSW", "PQ", "SQ8")), factories
    for r in res["results"]:
        positive(r["recall_at_10"], r["latency"]["1"]["p50_ms"], r["build_s"], r["bytes_per_object"],
                 r["timed_queries"])
    positive(res["choose_index"]["recall_at_10"])


def check_real_retrieval(res: dict[str, Any]) -> None:
    positive(res["survey"]["n_scored"], res["pca_components"])
    assert set(res["results"]) == {"encoder", "random_weights", "pca50_whole_stamp", "pca50_encoder_crop"}
    for r in res["results"].values():
        positive(len(r["per_class"]))
        assert 0 <= r["macro"] <= 1


def check_simulate(res: dict[str, Any]) -> None:
    for r in res["results"]:
        positive(r["objects_per_s"], r["objects_per_cpu_s"], r["bytes_per_object"])
    positive(len(res["metrics"]["per_class_ms_one_process"]))
    for v in res["metrics"]["per_class_ms_one_process"].values():
        positive(v["n"], v["mean_ms"])


def check_train(res: dict[str, Any]) -> None:
    m = res["metrics"]
    assert res["settings"]["precision"] == "bf16" and res["settings"]["channels_last"]  # the CUDA path, on the CPU
    positive(*(m[k]["median"] for k in ("bare_images_per_s", "pipeline_images_per_s", "pipeline_over_bare",
                                       "stage_read_workers_images_per_s", "stage_read_main_images_per_s",
                                       "stage_augment_images_per_s")), m["serial_bound_images_per_s"])


def check_precision(res: dict[str, Any]) -> None:
    m = res["metrics"]
    positive(m["n_objects"], m["n_queries"], m["chance"])
    for name in ("trained", "random_weights"):
        assert 0 <= m[name]["precision_at_k"] <= 1, m


def check_ablation(res: dict[str, Any]) -> None:
    positive(res["n_objects"])
    for b in res.get("baselines", {}).values():
        assert 0 <= b["macro"] <= 1
    assert [e["epoch"] for e in res["evals"]] == [0, 1]
    for e in res["evals"]:
        positive(e["train_s"] if e["epoch"] else 1.0)
        assert 0 <= e["plain"]["macro"] <= 1
    sup = res["supervised_ceiling"]  # the labelled K-fold CNN: every scored object scored out of fold
    positive(sup["seconds"])
    assert sup["folds"] == 2 and 0 <= sup["accuracy"] <= 1
    assert all(0 <= sup[k]["macro"] <= 1 for k in ("logprob", "features"))


def check_scale(res: dict[str, Any]) -> None:
    od = res["ondisk"]
    positive(od["n"], od["build_s"], od["ivfdata_bytes"], od["embeddings_bytes"], res["hnsw"]["n"],
             res["milvus_lite"]["n"], res["ground_truth_s"], *res["ratios"].values())
    assert set(od["build_seconds"]) == {"train", "fill", "merge"} and od["processes"] == 2
    assert [r["params"]["nprobe"] for r in od["sweep"]] == [8, 16]
    for key in ("ondisk", "hnsw", "milvus_lite"):
        for r in res[key]["sweep"]:
            positive(r["recall_at_10"], r["latency_1_thread"]["p50_ms"], r["timed_queries"])
        assert isinstance(res[key]["anon_bytes_per_object"], float)  # RAM growth: may be ~0 at this size


def check_upload_bombs(res: dict[str, Any]) -> None:
    m = res["metrics"]
    positive(res["idle_rss_mb"], res["vmhwm_mb"], *(r["requests"] for r in res["results"].values()))
    assert m["bombs_refused_413"] and res["results"]["ordinary_fits_64px"]["statuses"] == [200]


def check_readout(res: dict[str, Any]) -> None:
    positive(res["n_objects"], res["n_queries"], res["n_copies"], res["ratios"]["encode_time_dihedral8_over_plain"],
             res["ratios"]["encode_time_aligned4_over_plain"])
    assert set(res["readouts"]) == {"plain", "dihedral8", "aligned4"}
    for r in res["readouts"].values():
        positive(r["encode_s"], r["objects_per_s"], len(r["per_class"]))
        assert all(0 <= r[k] <= 1 for k in ("precision_at_10", "copy_in_top_5", "copy_first",
                                            "noise_only_copy_in_top_5"))
        assert r["copy_first"] <= r["copy_in_top_5"]


GZ1 = ROOT / "tests" / "data" / "gz1_sdss"
TINY_CLASSES = "spiral,elliptical,lenticular,irregular,edge_on,merger,lens,star"

SMOKES = [
    # the ablation loop on the tiny simulated survey: its PCA-50 baselines need 50 scored objects
    Smoke("ablate_real_ssl.py",
          lambda tmp, fx: ["--survey", str(fx.survey), "--labels", str(fx.labels), "--id-column", "object_id",
                           "--label-column", "class", "--merge", "", "--classes", TINY_CLASSES, "--epochs", "1",
                           "--eval-every", "1", "--limit", "56", "--name", "smoke", "--out", str(tmp),
                           "--supervised-folds", "2", "--supervised-epochs", "1",
                           "--train", json.dumps({"batch_size": 8, "queue_size": 16, "proj_dim": 16, "proj_hidden": 32,
                                                  "backbone_kwargs": json.loads(TINY_BACKBONE)})],
          check_ablation, timeout_s=180, result="real_ssl_ablation_smoke.json",
          defaults=("bench/results/real_ssl_ablation_smoke.json",)),
    Smoke("bench_encode.py",
          lambda tmp, fx: ["--survey", str(fx.survey), "--device", "cpu", "--batch-size", "64", "--shard-size", "128",
                           "--repeats", "1", "--out", str(tmp / "out.json")],
          check_encode),
    Smoke("bench_explorer.py",
          lambda tmp, fx: ["--artifacts", str(fx.artifacts), "--points", "5000", "--k", "8", "--repeats", "1",
                           "--warmup", "0", "--no-docs", "--out", str(tmp / "out.json")],
          check_explorer, timeout_s=180,
          defaults=("bench/results/explorer.json", "docs/explorer.md", "docs/img/explorer_map_1e6.png")),
    Smoke("bench_index_types.py",
          lambda tmp, fx: ["--n", "3000", "--dim", "32", "--queries", "40", "--clusters", "20", "--ef-search", "16",
                           "--nprobe", "4", "--threads", "1", "--warmup", "4", "--flat-latency-queries", "20",
                           "--out", str(tmp / "out.json")],
          check_index_types, defaults=("bench/results/index_types_n3000.json",)),
    Smoke("bench_quality.py",
          lambda tmp, fx: ["--survey", str(fx.survey), "--artifacts", str(fx.artifacts), "--top", "10",
                           "--name", "smoke", "--out", str(tmp / "out.json")],
          check_quality, defaults=("bench/results/quality_smoke.json",)),
    Smoke("bench_vote_rounds.py",
          lambda tmp, fx: ["--artifacts", str(fx.artifacts), "--seeds", "4", "--rounds", "2", "--votes", "5,10",
                           "--k", "20", "--name", "smoke", "--out", str(tmp / "out.json")],
          check_vote_rounds, defaults=("bench/results/vote_rounds_smoke.json",)),
    Smoke("bench_vote_retrain.py",
          lambda tmp, fx: ["--n", "3000", "--dim", "16", "--repeats", "1", "--out", str(tmp / "out.json")],
          check_vote_retrain, defaults=("bench/results/vote_retrain_n3000.json",)),
    Smoke("bench_readout.py",
          lambda tmp, fx: ["--artifacts", str(fx.artifacts), "--copies", "40", "--out", str(tmp), "--name", "smoke"],
          check_readout, result="readout_smoke.json"),
    Smoke("bench_real_retrieval.py",
          lambda tmp, fx: ["--images", str(GZ1), "--labels", str(GZ1 / "labels.csv"), "--work", str(tmp / "work"),
                           "--fit-px", "64", "--epochs", "1", "--name", "smoke", "--out", str(tmp / "out.json"),
                           "--train-args", f"--max-steps 2 --backbone-kwargs {shlex.quote(TINY_BACKBONE)} "
                           "--proj-dim 16 --proj-hidden 32 --workers 0 --monitor-size 0 --device cpu"],
          check_real_retrieval, timeout_s=240, defaults=("bench/results/real_retrieval_smoke.json",)),
    Smoke("bench_scale.py",
          lambda tmp, fx: ["--n", "20000", "--hnsw-n", "5000", "--milvus-n", "2000", "--dim", "32", "--clusters", "20",
                           "--nlist", "64", "--train-size", "5000", "--pq-m", "8", "--queries", "30",
                           "--latency-queries", "20", "--warmup", "2", "--milvus-queries", "10", "--nprobe", "8", "16",
                           "--k-factor", "16",
                           "--processes", "2", "--work", str(tmp / "work"), "--out", str(tmp / "out.json")],
          check_scale, timeout_s=180, defaults=("bench/results/scale_n20000.json",)),
    Smoke("bench_service_load.py",
          lambda tmp, fx: ["--n", "2000", "--factory", "HNSW32", "--workers", "1", "--repeats", "1", "--duration", "4",
                           "--warmup", "700", "--latency-requests", "100", "--requests", "400",
                           "--search-queries", "200", "--workdir", str(tmp / "work"), "--out", str(tmp / "out.json")],
          check_service_load, timeout_s=180),
    Smoke("bench_upload_bombs.py",
          lambda tmp, fx: ["--artifacts", str(fx.artifacts), "--rounds", "1", "--concurrency", "4",
                           "--out", str(tmp / "out.json")],
          check_upload_bombs, defaults=("bench/results/upload_bombs.json",)),
    Smoke("bench_simulate.py",
          lambda tmp, fx: ["--n", "16", "--workers", "1", "--repeats", "1", "--shard-size", "8", "--per-class-n", "8",
                           "--out", str(tmp / "out.json")],
          check_simulate, defaults=("bench/results/simulate.json",)),
    Smoke("bench_train.py",
          lambda tmp, fx: ["--survey", str(fx.survey), "--device", "cpu", "--gpu-path", "--batch-size", "16",
                           "--queue-size", "64", "--backbone-kwargs", TINY_BACKBONE, "--steps", "2", "--warmup", "1",
                           "--repeats", "1", "--workers", "1", "--out", str(tmp / "out.json")],
          check_train),
    Smoke("precision_vs_random.py",
          lambda tmp, fx: ["--encoder", str(fx.encoder), "--survey", str(fx.survey), "--out", str(tmp / "out.json")],
          check_precision, defaults=("bench/results/precision_vs_random.json",)),
]


def test_every_bench_script_has_a_smoke_run() -> None:
    assert sorted(p.name for p in BENCH.glob("*.py") if not p.name.startswith("_")) == sorted(s.script for s in SMOKES)


@dataclass
class Run:
    smoke: Smoke
    tmp: Path
    returncode: int | None = None  # None: killed at its time limit
    stderr: str = ""
    seconds: float = 0.0


def run_smoke(smoke: Smoke, tmp: Path, fx: Fixtures) -> Run:
    argv = [sys.executable, str(BENCH / smoke.script), *smoke.args(tmp, fx)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.monotonic()
    try:
        proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=smoke.timeout_s)
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        return Run(smoke, tmp, None, err, time.monotonic() - t0)
    return Run(smoke, tmp, proc.returncode, proc.stderr, time.monotonic() - t0)


PARALLEL = 3  # scripts at once: most of a tiny run is interpreter start-up, server start and waits, not CPU


@pytest.fixture(scope="module")
def smoke_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tiny_survey: Path,
               tiny_encoder: Path, tiny_artifacts: Path) -> Iterator[dict[str, Future[Run]]]:
    """Starts every selected smoke run at once (PARALLEL at a time); each test waits for its own."""
    from survey.native import NativeSurvey

    labels = tmp_path_factory.mktemp("labels") / "labels.csv"
    cat = NativeSurvey(tiny_survey).catalog
    labels.write_text("object_id,class\n" + "".join(f"{i},{c}\n" for i, c in zip(cat["object_id"], cat["class"],
                                                                                  strict=True)))
    fx = Fixtures(tiny_survey, tiny_encoder, tiny_artifacts, labels)
    chosen = {item.callspec.params["smoke"].script for item in request.session.items
              if item.module is request.module and hasattr(item, "callspec") and "smoke" in item.callspec.params}
    with ThreadPoolExecutor(PARALLEL) as pool:
        yield {s.script: pool.submit(run_smoke, s, tmp_path_factory.mktemp(s.script.removesuffix(".py")), fx)
               for s in sorted(SMOKES, key=lambda s: -s.timeout_s) if s.script in chosen}


@pytest.fixture(scope="module")
def started() -> float:
    return time.time()


@pytest.mark.parametrize("smoke", SMOKES, ids=[s.script for s in SMOKES])
def test_benchmark_runs_at_tiny_size_and_measures_something(smoke: Smoke, started: float,
                                                            smoke_runs: dict[str, Future[Run]]) -> None:
    run = smoke_runs[smoke.script].result()
    print(f"{smoke.script}: {run.seconds:.1f} s")  # pytest -s shows what each smoke run costs
    if run.returncode is None:
        pytest.fail(f"{smoke.script} still running after {smoke.timeout_s:g} s (hung?); stderr ends:\n"
                    f"{run.stderr[-3000:]}")
    assert run.returncode == 0, f"{smoke.script} exited {run.returncode} after {run.seconds:.0f} s:\n" \
                                f"{run.stderr[-3000:]}"
    out = run.tmp / smoke.result
    assert out.exists(), f"{smoke.script} wrote no JSON:\n{run.stderr[-2000:]}"
    res = json.loads(out.read_text())
    assert res.get("benchmark") or res.get("name"), res.keys()
    smoke.check(res)
    touched = [p for p in smoke.defaults if (ROOT / p).exists() and (ROOT / p).stat().st_mtime >= started]
    assert not touched, f"{smoke.script} wrote {touched} (its smoke run must write only into its tmp folder)"


def test_service_load_stops_when_a_phase_measured_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    """0 requests (a server that never answered) or only failed ones: exit 1 with one line, no JSON."""
    import bench_service_load as b

    ok = {"requests": 40, "errors": 0}
    b.require_phases_measured({"workers": 1, "latency": [ok], "throughput": [ok]})
    for bad in ({"requests": 0, "errors": 0}, {"requests": 40, "errors": 40}):
        with pytest.raises(SystemExit) as e:
            b.require_phases_measured({"workers": 1, "latency": [ok], "throughput": [bad]})
        assert str(e.value).startswith("service_load: error: nothing measured (1 worker(s), throughput repeat 0")
        assert "no results written" in str(e.value)


def test_bench_quality_from_version_reads_what_the_detectors_measure(smoke_runs: dict[str, Future[Run]],
                                                                     tiny_survey: Path, tiny_artifacts: Path,
                                                                     tmp_path: Path) -> None:
    """--from-version takes the detector values the version stored instead of measuring them again:
    the same table as the measured smoke run on the same survey, and no throughput."""
    measured = smoke_runs["bench_quality.py"].result()
    assert measured.returncode == 0, measured.stderr[-3000:]
    out = tmp_path / "from_version.json"
    proc = subprocess.run([sys.executable, str(BENCH / "bench_quality.py"), "--survey", str(tiny_survey),
                           "--artifacts", str(tiny_artifacts), "--from-version", "--top", "10", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got, want = json.loads(out.read_text()), json.loads((measured.tmp / "out.json").read_text())
    assert got["detectors_from"] == "version" and got["objects_per_s"] is None
    assert got["auroc"].keys() == want["auroc"].keys() and got["top"] == want["top"]
    for name, row in want["auroc"].items():
        assert got["auroc"][name] == pytest.approx(row), name
    proc = subprocess.run([sys.executable, str(BENCH / "bench_quality.py"), "--survey", str(tiny_survey),
                           "--from-version", "--out", str(tmp_path / "x.json")], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0 and "give --artifacts" in proc.stderr


def test_vote_rounds_interesting_side_measures_precision_of_an_anomaly_list(tiny_artifacts: Path,
                                                                             tmp_path: Path) -> None:
    """`bench_vote_rounds.py --target interesting`: an anomaly list re-ordered by interesting / boring
    votes, no seeds, precision@k per round for every method, the votes counted."""
    smoke = Smoke("bench_vote_rounds.py",
                  lambda tmp, fx: ["--artifacts", str(fx.artifacts), "--target", "interesting", "--list", "combined",
                                   "--interesting", "merger,irregular", "--rounds", "2", "--votes", "10", "--k", "20",
                                   "--out", str(tmp / "out.json")], lambda res: None)
    run = run_smoke(smoke, tmp_path, Fixtures(tmp_path, tmp_path, tiny_artifacts, tmp_path))
    assert run.returncode == 0, run.stderr[-3000:]
    res = json.loads((tmp_path / "out.json").read_text())
    assert res["target"] == "interesting" and res["measure"] == "precision@20" and res["n_lenses"] > 0
    rows = res["runs"]["10"]
    methods = {"learned_from_votes", "list_only", "similarity_to_found", "lof", "astronomaly"}
    for r in rows:
        assert set(r["precision"]) == methods == set(r["interesting_voted"])
        assert all(0.0 <= v <= 1.0 for v in r["precision"].values())
    assert rows[0]["precision"]["learned_from_votes"] == rows[0]["precision"]["list_only"]  # nothing voted yet
    # the voted interesting head the list measured
    assert all(r["precision"]["learned_from_votes"] * 20 >= min(20, r["interesting_voted"]["learned_from_votes"])
               for r in rows)

    # --plot draws that JSON's curves (docs/discovery.md's figures): one row per JSON, a panel per vote size
    figure = tmp_path / "curves.png"
    plot = subprocess.run([sys.executable, str(BENCH / "bench_vote_rounds.py"), "--plot", str(tmp_path / "out.json"),
                           str(tmp_path / "out.json"), "--figure", str(figure)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert plot.returncode == 0, plot.stderr[-3000:]
    from PIL import Image

    with Image.open(figure) as im:
        assert im.format == "PNG" and im.size == (round(4.2 * 110), round(2 * 3.0 * 110))
    refused = subprocess.run([sys.executable, str(BENCH / "bench_vote_rounds.py"), "--plot",
                              str(tmp_path / "out.json")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "--figure" in refused.stderr
