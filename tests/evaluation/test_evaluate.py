"""`skysift evaluate` end to end on the tiny published version: the report's structure, value
ranges, counts that must match the catalog, metrics recomputed independently from the truth, the
figures and the rendered docs page."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score
from typer.testing import CliRunner

from evaluation.lenses import pick_seeds
from indexer.artifacts import current_dir
from indexer.store import IndexedSurvey

TASKS = ("morphology", "photoz", "lenses", "anomalies", "retrieval", "finetune")
TARGET_IDS = {
    "probe_ge_cnn_1pct",
    "probe_ge_cnn_10pct",
    "probe_reaches_cnn_full_le_25pct",
    "photoz_sigma_mad_le_cnn",
    "lens_recall_at_100",
    "anomaly_auroc",
    "same_class_precision_at_10",
    "finetuned_ge_scratch_1pct",
    "finetuned_ge_scratch_10pct",
    "finetuned_reaches_scratch_full_le_50pct",
    "finetuned_photoz_le_scratch_10pct",
    "finetuned_photoz_le_scratch_100pct",
    "probe_within_0.03_of_scratch_10pct",
}


def _unit_interval(v: float | None) -> bool:
    return v is not None and 0.0 <= v <= 1.0


@pytest.fixture(scope="module")
def evaluated(tiny_survey: Path, tiny_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from skysift.cli import cli

    out = tmp_path_factory.mktemp("evaluate")
    tried = out / "tried.md"
    tried.write_text("We tried a longer schedule (hand-written note).\n")
    args = [
        "evaluate",
        "--artifacts",
        str(tiny_artifacts),
        "--survey",
        str(tiny_survey),
        "--out",
        str(out / "run"),
        "--docs",
        str(out / "docs" / "science.md"),
        "--what-tried",
        str(tried),
        "--cnn-max-steps",
        "3",
        "--cnn-min-steps",
        "0",
        "--cnn-batch-size",
        "32",
        "--lens-seeds",
        "5",
        "--lens-negatives",
        "200",
        "--map-queries",
        "100",
        "--copy-queries",
        "30",
        "--gallery-queries",
        "3",
        "--finetune-fractions",
        "0.01,0.1,1",
        "--finetune-epochs",
        "1",
        "--finetune-max-steps",
        "1",
        "--finetune-min-steps",
        "0",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    report = json.loads((out / "run" / "report.json").read_text())
    return {
        "report": report,
        "out": out,
        "store": IndexedSurvey(current_dir(tiny_artifacts), tiny_survey),
        "output": result.output,
    }


def test_report_has_every_task_target_and_figure(evaluated: dict):
    r = evaluated["report"]
    assert r["schema"] == "skysift.evaluation/1"
    assert set(r["tasks"]) == set(TASKS) and set(r["timings_s"]) == set(TASKS)
    assert r["command"].startswith("skysift evaluate --artifacts ") and "--lens-seeds 5" in r["command"]
    assert r["settings"]["lens_seeds"] == 5 and r["settings"]["cnn_max_steps"] == 3
    assert r["version"]["n_objects"] == len(evaluated["store"])
    assert r["splits"]["train"] + r["splits"]["val"] + r["splits"]["test"] == r["version"]["n_objects"]
    assert {t["id"] for t in r["targets"]} == TARGET_IDS
    for t in r["targets"]:
        assert t["met"] in (True, False), t  # every target measured
        assert t["value"] is not None or (t["met"] is False and "never reached" in t["note"]), t
        if t["value"] is not None:
            assert t["shortfall"] == 0.0 if t["met"] else t["shortfall"] > 0
    assert set(r["figures"]) == {
        "label_efficiency",
        "photoz_scatter",
        "lens_precision_recall",
        "anomaly_roc",
        "gallery",
    }
    for path in r["figures"].values():
        assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_morphology_section(evaluated: dict):
    m = evaluated["report"]["tasks"]["morphology"]
    assert m["headline_metric"] == "macro_f1" and "star" not in m["classes"] and "lens" not in m["classes"]
    assert [p["fraction"] for p in m["probe"]] == [0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0]
    assert [p["fraction"] for p in m["supervised"]] == [0.01, 0.1, 1.0]
    n = [p["n_labels"] for p in m["probe"]]
    assert n == sorted(n) and n[0] >= len(m["classes"]) and n[-1] == m["n_train_labelled"]
    for p in m["probe"] + m["supervised"]:
        assert _unit_interval(p["accuracy"]) and _unit_interval(p["macro_f1"])
    assert all(p["steps"] == 3 for p in m["supervised"])  # capped by --cnn-max-steps
    reach = m["probe_reaches_supervised_full"]
    assert reach["supervised_full_score"] == m["supervised"][-1]["macro_f1"]
    assert reach["fraction"] is None or 0 < reach["fraction"] <= 1


def test_photoz_section(evaluated: dict):
    p = evaluated["report"]["tasks"]["photoz"]
    cat = evaluated["store"].catalog
    galaxies = int(np.sum(~np.isin(cat["class"], ["star", "lens"])))
    assert p["n_train"] + p["n_val"] + p["n_test"] == galaxies
    for model in ("knn", "supervised", "baseline_median_z"):
        o = p[model]["overall"]
        assert o["n"] == p["n_test"] and o["sigma_mad"] >= 0 and _unit_interval(o["outlier_fraction"])
        assert sum(b["n"] for b in p[model]["by_mag"]) == p["n_test"]
    assert p["knn"]["k"] in (5, 10, 20, 50) or p["knn"]["k"] == p["n_train"]


def test_lens_section_matches_an_independent_computation(evaluated: dict):
    lz = evaluated["report"]["tasks"]["lenses"]
    store = evaluated["store"]
    is_lens = np.asarray(store.catalog["is_lens"], dtype=bool)
    assert lz["n_seeds"] == 5 and lz["n_lenses"] == int(is_lens.sum())
    assert lz["n_positive_evaluated"] == lz["n_lenses"] - 5 and lz["n_evaluated"] == len(store) - 5
    assert set(lz["rankers"]) == {"classifier", "similarity_max", "similarity_mean", "service_blend"}
    # recompute the similarity ranker's AUPRC with scikit-learn from the same seeds
    seeds = pick_seeds(is_lens, 5, seed=0)
    vec = np.asarray(store.embeddings, dtype=np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    sim = (vec @ vec[seeds].T).max(axis=1)
    keep = np.ones(len(vec), dtype=bool)
    keep[seeds] = False
    assert lz["rankers"]["similarity_max"]["auprc"] == pytest.approx(
        average_precision_score(is_lens[keep], sim[keep]), abs=1e-5
    )
    for r in lz["rankers"].values():
        assert _unit_interval(r["recall_at_100"]) and _unit_interval(r["auprc"]) and _unit_interval(r["r_precision"])
        assert r["recall_at_100_ceiling"] == 1.0  # fewer than 100 lenses to find
        assert all(_unit_interval(v) for v in r["precision_at_k"].values())


def test_anomaly_section_matches_an_independent_computation(evaluated: dict):
    a = evaluated["report"]["tasks"]["anomalies"]
    store = evaluated["store"]
    artifact = np.asarray(store.catalog["artifact_kind"]).astype(str) != ""
    rare = np.asarray(store.catalog["class"]).astype(str) == "lens"
    comb = a["sets"]["combined"]
    assert comb["n_positive"] == int((artifact | rare).sum()) and a["sets"]["artifacts"]["n_positive"] == artifact.sum()
    assert comb["auroc"] == pytest.approx(roc_auc_score(artifact | rare, store.anomaly))
    for s in a["sets"].values():
        assert _unit_interval(s["auroc"]) and _unit_interval(s["precision_at_100"])
    assert set(a["per_artifact_kind"]) == set(np.asarray(store.catalog["artifact_kind"])[artifact].tolist())
    # the pixel data-quality score and the combined list are measured on the same truth
    assert set(a["other_scores"]) == {"artifact", "combined"}
    art = a["other_scores"]["artifact"]["sets"]["artifacts"]
    assert art["auroc"] == pytest.approx(roc_auc_score(artifact[artifact | ~rare], store.quality[artifact | ~rare]))
    assert a["other_scores"]["combined"]["sets"]["combined"]["auroc"] == pytest.approx(
        roc_auc_score(artifact | rare, store.combined))


def test_retrieval_section(evaluated: dict):
    r = evaluated["report"]["tasks"]["retrieval"]
    cat = evaluated["store"].catalog
    assert r["precision"]["k"] == 10 and r["precision"]["n_queries"] == int(np.sum(cat["class"] != "star"))
    assert _unit_interval(r["precision"]["overall"]) and _unit_interval(r["map"]["map"])
    assert r["map"]["n_queries"] == 100
    c = r["augmented_copy"]
    assert c["n"] == 30 and c["top_k"] == 5 and _unit_interval(c["found_in_top_5"]) and _unit_interval(c["top_1_exact"])
    assert c["augmentation"]["rotate"] and c["augmentation"]["flip"] and c["augmentation"]["noise"]
    # per class of the copied object: the counts add up to the copies, the fractions average to the whole
    per = c["per_class"]
    assert set(per) <= set(np.unique(cat["class"])) - {"star"} and sum(v["n"] for v in per.values()) == 30
    assert sum(v["n"] * v["found_in_top_5"] for v in per.values()) / 30 == pytest.approx(c["found_in_top_5"])
    assert len(r["gallery"]["queries"]) == 3 and all(len(nb) == 8 for nb in r["gallery"]["neighbours"])


def test_docs_page_shows_targets_shortfalls_figures_and_what_was_tried(evaluated: dict):
    r, out = evaluated["report"], evaluated["out"]
    text = (out / "docs" / "science.md").read_text()
    assert "We tried a longer schedule (hand-written note)." in text
    assert text.index("<!-- what-was-tried:begin") < text.index("hand-written") < text.index("<!-- what-was-tried:end")
    for t in r["targets"]:
        assert t["claim"] in text
        if t["met"] is False and t["value"] is not None:
            assert f"missed by {t['shortfall']:.4f}" in text
    for path in r["figures"].values():
        assert f"](../run/figures/{Path(path).name})" in text  # relative to the page
    assert text.count(f"Made by: `{r['command']}`") == len(r["figures"])
    for title in ("Morphology", "Photometric redshift", "Strong lenses from 5 labels", "Anomalies", "Retrieval"):
        assert f"## {title}" in text


def test_rerendering_the_docs_from_the_json_gives_the_same_page(evaluated: dict, tmp_path: Path):
    from evaluation.science_doc import write_doc

    out = evaluated["out"]
    page = out / "docs" / "science.md"
    again = write_doc(evaluated["report"], out / "docs" / "again.md", out / "tried.md")
    assert again.read_text() == page.read_text()
    from skysift.cli import cli  # the same page from the saved report.json, through the command

    r = CliRunner().invoke(cli, ["science-doc", "--report", str(out / "run" / "report.json"),
                                 "--docs", str(out / "docs" / "cli.md"), "--what-tried", str(out / "tried.md")])
    assert r.exit_code == 0, r.output
    assert (out / "docs" / "cli.md").read_text() == page.read_text()


def test_cli_refuses_what_it_cannot_evaluate_with_a_message(tmp_path: Path, tiny_artifacts: Path):
    from skysift.cli import cli

    r = CliRunner().invoke(cli, ["evaluate", "--artifacts", str(tmp_path), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "nothing published" in r.output
    r = CliRunner().invoke(cli, ["evaluate", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "exactly one" in r.output
    r = CliRunner().invoke(
        cli,
        [
            "evaluate",
            "--artifacts",
            str(tiny_artifacts),
            "--out",
            str(tmp_path / "o"),
            "--tasks",
            "lenses",
            "--lens-seeds",
            "500",
            "--no-figures",
        ],
    )
    assert r.exit_code == 1 and "lens_seeds" in r.output
    assert not (tmp_path / "o" / "report.json").exists()
