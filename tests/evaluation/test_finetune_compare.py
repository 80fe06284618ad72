"""`skysift evaluate --tasks finetune` on the tiny published version: at every label fraction the
frozen probe, the fine-tuned encoder and the same architecture from scratch are scored on the same
test objects, for morphology and photo-z; report.json, OUT/finetune.md and the docs page carry it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evaluation.finetune_table import METHODS, table


@pytest.fixture(scope="module")
def compared(tiny_survey: Path, tiny_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from skysift.cli import cli

    out = tmp_path_factory.mktemp("ft_eval")
    args = [
        "evaluate",
        "--artifacts",
        str(tiny_artifacts),
        "--survey",
        str(tiny_survey),
        "--out",
        str(out / "run"),
        "--tasks",
        "finetune",
        "--finetune-fractions",
        "0.1,1",
        "--finetune-epochs",
        "2",
        "--finetune-min-steps",
        "0",
        "--finetune-max-steps",
        "2",
        "--finetune-freeze-epochs",
        "1",
        "--cnn-batch-size",
        "32",
        "--no-figures",
        "--docs",
        str(out / "science.md"),
        "--device",
        "cpu",
        "--threads",
        "1",
    ]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output + repr(r.exception)
    return {"report": json.loads((out / "run" / "report.json").read_text()), "out": out, "output": r.output}


def test_every_fraction_has_all_three_methods_on_the_same_test_objects(compared: dict):
    ft = compared["report"]["tasks"]["finetune"]
    assert ft["fractions"] == [0.1, 1.0] and ft["fit"]["max_steps"] == 2
    for task, key in (("morphology", "macro_f1"), ("photoz", "sigma_mad")):
        s = ft[task]
        assert s["metric"] == key and [p["fraction"] for p in s["points"]] == [0.1, 1.0]
        n = [p["n_labels"] for p in s["points"]]
        assert n[0] < n[1] == s["n_train"]
        for p in s["points"]:
            assert set(METHODS) <= set(p)
            for m in METHODS:
                assert p[m][key] is not None and p[m][key] >= 0
            assert p["finetuned"]["steps"] == p["scratch"]["steps"] <= 2  # the same schedule, capped
        if task == "photoz":
            assert all(p[m]["n"] == s["n_test"] for p in s["points"] for m in METHODS)


def test_markdown_table_is_written_next_to_the_report_and_into_the_docs_page(compared: dict):
    md = (compared["out"] / "run" / "finetune.md").read_text()
    assert "| labels | n | frozen linear probe | fine-tuned SSL | from scratch | best |" in md
    assert md.count("| 10% |") == 2 and md.count("| 100% |") == 2  # morphology and photo-z
    page = (compared["out"] / "science.md").read_text()
    assert "## Label efficiency: frozen probe vs fine-tuned SSL vs from scratch" in page
    assert "\n".join(table(compared["report"]["tasks"]["finetune"])) in page
    assert "--finetune-fractions 0.1,1" in compared["report"]["command"]
