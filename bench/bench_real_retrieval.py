"""Same-class retrieval on a folder of real labelled cutouts: the trained encoder vs raw-pixel PCA-50
vs random weights, measured in one run on the same objects.

Runs the product as a user would (each step skipped when its output exists, unless --fresh):
  skysift ingest IMAGES --kind images --catalog LABELS --pixel-scale-arcsec S --fit-px N --bands B
  skysift train --survey WORK/survey --out WORK/run --epochs E
  skysift index --survey WORK/survey --encoder WORK/run/encoder --artifacts WORK/artifacts
then reads the published version's embeddings and computes, per class and macro-averaged,
precision@10 (the fraction of an object's 10 nearest neighbours, itself excluded, with its class)
over the objects of the scored classes. Baselines on exactly the same stamps and objects:
PCA-50 of the raw pixels (the whole stamp, and the centre crop the encoder sees; the better of the
two is the one to beat) and the same encoder architecture with random weights.

    .venv/bin/python bench/bench_real_retrieval.py --images ../shared/data/real/gz1_sdss_dev \\
        --labels ../shared/data/real/gz1_sdss_dev/labels.csv --work runs/gz1 --epochs 20

Writes bench/results/real_retrieval_<name>.json (or --out) and prints the Markdown table for
docs/real_data.md. PCA keeps 50 components, or one fewer than the scored objects when there are
fewer (the smoke run in tests/test_bench_smoke.py scores the 16 GZ1 stamps of tests/data/gz1_sdss).
"""

from __future__ import annotations

import argparse
import csv
import shlex
import subprocess
import time
from pathlib import Path

from _common import (
    RESULTS_DIR,
    ROOT,
    command_line,
    git_sha,
    host_machine,
    log,
    require_measured,
    utc_now_iso,
    write_json,
)


def run_step(name: str, argv: list[str], done: Path, fresh: bool, timings: dict[str, float]) -> None:
    if done.exists() and not fresh:
        log(f"{name}: {done} exists, skipped")
        return
    log(f"{name}: {' '.join(argv)}")
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, cwd=ROOT)
    timings[name] = round(time.perf_counter() - t0, 1)


def precision_at_10(emb, labels, classes):
    import numpy as np

    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sim = e @ e.T
    np.fill_diagonal(sim, -np.inf)
    nn = np.argpartition(-sim, 10, axis=1)[:, :10]
    hit = (labels[nn] == labels[:, None]).mean(axis=1)
    per = {c: float(hit[labels == c].mean()) for c in classes if (labels == c).any()}
    return {"per_class": per, "macro": float(np.mean(list(per.values())))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=Path, required=True)
    ap.add_argument("--labels", type=Path, required=True, help="CSV with the id, file and label columns")
    ap.add_argument("--id-column", default="objid")
    ap.add_argument("--label-column", default="gz1_class_name")
    ap.add_argument("--merge", default="spiral_cw=spiral,spiral_acw=spiral", help="label=coarse,...")
    ap.add_argument("--drop", default="star_or_unknown", help="labels left out of queries and candidates")
    ap.add_argument("--work", type=Path, default=Path("runs/gz1"))
    ap.add_argument("--bands", default="i,r,g", help="what the images' R,G,B show")
    ap.add_argument("--pixel-scale-arcsec", type=float, default=0.396)
    ap.add_argument("--fit-px", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--train-args", default="", help="extra arguments for skysift train")
    ap.add_argument("--encoder", type=Path, help="use this encoder instead of training one")
    ap.add_argument("--name", default="gz1")
    ap.add_argument("--fresh", action="store_true", help="redo every step")
    ap.add_argument("--out", type=Path, help="JSON result file (default bench/results/real_retrieval_<name>.json)")
    a = ap.parse_args()

    import numpy as np
    import torch
    from sklearn.decomposition import PCA

    from encoder.embed import embed_array
    from encoder.model import Encoder
    from encoder.preprocess import center_crop
    from encoder.weights import load_encoder
    from indexer.store import IndexedSurvey

    skysift = str(ROOT / ".venv" / "bin" / "skysift")
    work = a.work if a.work.is_absolute() else ROOT / a.work
    timings: dict[str, float] = {}
    run_step("ingest", [skysift, "ingest", str(a.images.resolve()), "--kind", "images", "--catalog",
                        str(a.labels.resolve()), "--out", str(work / "survey"), "--pixel-scale-arcsec",
                        str(a.pixel_scale_arcsec), "--fit-px", str(a.fit_px), "--bands", a.bands, "--overwrite"],
             work / "survey" / "ingest_report.json", a.fresh, timings)
    encoder_dir = a.encoder.resolve() if a.encoder else work / "run" / "encoder"
    if a.encoder is None:
        run_step("train", [skysift, "train", "--survey", str(work / "survey"), "--out", str(work / "run"),
                           "--epochs", str(a.epochs), *shlex.split(a.train_args)],
                 encoder_dir / "model.json", a.fresh, timings)
    run_step("index", [skysift, "index", "--survey", str(work / "survey"), "--encoder", str(encoder_dir),
                       "--artifacts", str(work / "artifacts"), "--job", "bench"],
             work / "artifacts" / "current", a.fresh, timings)

    store = IndexedSurvey.open_current(work / "artifacts")
    merge = dict(kv.split("=") for kv in a.merge.split(",") if kv)
    drop = set(a.drop.split(",")) - {""}
    with open(a.labels) as f:
        label_of = {r[a.id_column]: merge.get(r[a.label_column], r[a.label_column]) for r in csv.DictReader(f)}
    ids = np.array([str(store.record(i)["object_id"]) for i in range(len(store))])
    labels = np.array([label_of.get(i, "") for i in ids], dtype=object)
    keep = np.nonzero([lab not in drop and lab != "" for lab in labels])[0]
    classes = sorted({str(v) for v in labels[keep]}, key=lambda c: -int((labels[keep] == c).sum()))
    log(f"{len(keep)} objects in classes {classes}")
    require_measured("real_retrieval", scored_objects=len(keep), classes=len(classes))

    emb = np.load(store.dir / "embeddings.npy").astype(np.float32)[keep]
    stamps = store.images(keep)
    encoder, card = load_encoder(encoder_dir)
    card = card.for_survey(store.units)
    torch.manual_seed(0)
    random_encoder = Encoder(card.backbone, len(card.bands), card.projection_dim, card.projection_hidden,
                             card.small_input, card.backbone_kwargs).eval()
    crop = center_crop(torch.from_numpy(stamps), card.preprocess.input_size_px).numpy()
    results = {
        "encoder": precision_at_10(emb, labels[keep], classes),
        "random_weights": precision_at_10(embed_array(random_encoder, card, stamps), labels[keep], classes),
    }
    pca_components = min(50, len(keep) - 1)
    for name, pix in (("pca50_whole_stamp", stamps), ("pca50_encoder_crop", crop)):
        flat = np.nan_to_num(pix.reshape(len(pix), -1))
        results[name] = precision_at_10(PCA(pca_components, random_state=0).fit_transform(flat - flat.mean(0)),
                                        labels[keep], classes)
    best_pca = max(results["pca50_whole_stamp"]["macro"], results["pca50_encoder_crop"]["macro"])
    counts = {c: int((labels[keep] == c).sum()) for c in classes}
    train_record = card.training.get("settings", {})
    out = {
        "benchmark": "real_retrieval", "name": a.name, "date": utc_now_iso(), "git_sha": git_sha(short=True),
        "command": command_line(), "machine": host_machine(), "timings_s": timings,
        "survey": {"images": str(a.images), "n_objects": len(store), "n_scored": int(len(keep)), "counts": counts,
                   "pixel_scale_arcsec": store.pixel_scale_arcsec, "bands": list(store.bands),
                   "units": [b.units for b in store.units.per_band] if store.units else None},
        "encoder": {"dir": str(encoder_dir), "produced_by": card.produced_by,
                    "epochs": train_record.get("epochs"), "weights_sha256": card.weights_sha256},
        "pca_components": pca_components,
        "results": results,
        "margin_over_best_pca50": results["encoder"]["macro"] - best_pca,
    }
    path = a.out or RESULTS_DIR / f"real_retrieval_{a.name}.json"
    write_json(path, out)
    print(markdown(out))
    log(f"wrote {path}")


def markdown(r: dict) -> str:
    classes = list(r["survey"]["counts"])
    head = "| representation | " + " | ".join(f"{c} (n={r['survey']['counts'][c]})" for c in classes) + " | macro |"
    rows = [head, "|---" * (len(classes) + 2) + "|"]
    for name, res in r["results"].items():
        cells = " | ".join(f"{res['per_class'].get(c, float('nan')):.3f}" for c in classes)
        rows.append(f"| {name} | {cells} | **{res['macro']:.3f}** |")
    return "\n".join(rows) + f"\n\nmacro margin over the better PCA-50: {r['margin_over_best_pca50']:+.3f}\n"


if __name__ == "__main__":
    main()
