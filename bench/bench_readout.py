"""The readouts (plain, dihedral8, aligned4) of one encoder on a published, labelled version: retrieval quality and
encoding cost, side by side in one run.

For each readout (encoder.card.READOUTS) the script embeds every object of the version's survey
through the product's own path (`encoder.embed.embed_array`, the indexer's and the uploads'), then
measures, by exact cosine over those embeddings:

* same-class precision@10 over every non-star object (self excluded), overall and per class;
* the augmented-copy test of `skysift evaluate` (evaluation.retrieval.copy_augment_settings: a
  rotation by U(0, 360) deg, a flip with p = 0.5, fresh noise up to 1.5x the sky): the fraction of
  copies whose original is in their top 5, and in first place; and the top-5 fraction for the same
  fresh noise without the rotation and flip (what no readout can remove);
* the encoding time of the survey (objects/s) and its ratio to the plain readout's.

`--smooth-px 0,1` measures every readout again with the card's preprocessing smoothing set to each
sigma (encoder.preprocess.smooth; rows named e.g. `aligned4+smooth1`).

Usage (repository root; a version indexed by `skysift index`, e.g. docs/discovery.md's 20k surveys):
    .venv/bin/python bench/bench_readout.py --artifacts /tmp/a20k --copies 2000 --name sim20k_seed11
    .venv/bin/python bench/bench_readout.py --markdown docs/training.md \
        --from-json bench/results/readout_sim20k_seed11.json       # the table, from the JSON
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _common import (
    RESULTS_DIR,
    command_line,
    fill_markers,
    git_sha,
    host_machine,
    log,
    prefer_passive_omp,
    utc_now_iso,
    write_json,
)

prefer_passive_omp()

BEGIN, END = "<!-- readout:begin -->", "<!-- readout:end -->"


def markdown_table(d: dict) -> str:
    """Both readouts side by side, one row each, from a result JSON."""
    plain = d["readouts"]["plain"]
    classes = list(plain["per_class"])
    rows = ["| readout | precision@10 (all) | " + " | ".join(classes)
            + " | copy in top 5 | copy first | noise-only copy in top 5 | objects/s |",
            "|---|" + "---|" * (len(classes) + 5)]
    for name, r in d["readouts"].items():
        rows.append(f"| {name} | **{r['precision_at_10']:.3f}** | "
                    + " | ".join(f"{r['per_class'][c]:.3f}" for c in classes)
                    + f" | **{r['copy_in_top_5']:.3f}** | {r['copy_first']:.3f} | {r['noise_only_copy_in_top_5']:.3f}"
                    f" | {r['objects_per_s']:.0f} |")
    m = d["machine"]
    ratios = ", ".join(f"{k.removeprefix('encode_time_').replace('_over_', ' / ')} **{v}x**"
                       for k, v in d["ratios"].items())
    rows.append(f"\nEncoding time {ratios}; "
                f"{d['n_objects']:,} objects, {d['n_queries']:,} queries, {d['n_copies']:,} copies; "
                f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {d['threads']} threads; {d['date'][:10]}, "
                f"git {d['git_sha'][:7]}. Made by `{d['command']}`.")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--artifacts", type=Path, help="artifacts root; its current version is measured")
    ap.add_argument("--markdown", type=Path, help="render the table of --from-json into this doc and exit")
    ap.add_argument("--from-json", type=Path, help="a result JSON of this script (with --markdown)")
    ap.add_argument("--encoder", type=Path, help="default: the version's encoder")
    ap.add_argument("--label-column", default="class")
    ap.add_argument("--copies", type=int, default=2000, help="objects whose augmented copy is searched")
    ap.add_argument("--limit", type=int, default=0, help="only the first N objects (smoke runs)")
    ap.add_argument("--readouts", default="plain,dihedral8,aligned4", help="comma list of readouts to measure")
    ap.add_argument("--smooth-px", default="0", help="comma list of smoothing sigmas (px) to measure each readout at")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    ap.add_argument("--name", default="run")
    a = ap.parse_args()
    if a.markdown:
        if not a.from_json:
            ap.error("--markdown needs --from-json")
        import json

        fill_markers(a.markdown, BEGIN, END, markdown_table(json.loads(a.from_json.read_text())))
        return
    if not a.artifacts:
        ap.error("--artifacts is required (or --markdown with --from-json)")

    import numpy as np
    import torch

    from encoder.card import READOUTS, ModelCard
    from encoder.embed import embed_array
    from encoder.weights import load_encoder
    from evaluation.retrieval import copy_augment_settings
    from indexer.store import IndexedSurvey
    from training.augment import augment
    from training.data import Conditions, border_noise_sigma

    torch.set_num_threads(a.threads)
    store = IndexedSurvey.open_current(a.artifacts)
    encoder, card = load_encoder(a.encoder or store.encoder_dir)
    card = card.for_survey(store.units)
    n = len(store) if not a.limit else min(a.limit, len(store))
    images = store.images(np.arange(n))
    labels = np.asarray(store.catalog[a.label_column]).astype(str)[:n]
    queries = np.nonzero(labels != "star")[0]
    rows = np.linspace(0, n - 1, min(a.copies, n)).astype(np.int64)
    cond = Conditions(store.survey)
    noise = cond.noise[rows] if cond.noise is not None else border_noise_sigma(images[rows])
    full = copy_augment_settings(card.preprocess.input_size_px, 1.5)
    copies = {name: augment(torch.from_numpy(images[rows]), ebv=torch.from_numpy(cond.ebv[rows]),
                            psf_fwhm_arcsec=torch.from_numpy(cond.fwhm[rows]), noise_sigma=torch.as_tensor(noise),
                            coeffs=torch.zeros(len(store.bands)), pixel_scale_arcsec=store.pixel_scale_arcsec,
                            settings=settings, generator=torch.Generator().manual_seed(a.seed)).numpy()
              for name, settings in (("copy", full), ("noise_only", full.model_copy(update={"rotate": False,
                                                                                          "flip": False})))}

    result = {"benchmark": "readout", "name": a.name, "date": utc_now_iso(), "git_sha": git_sha(),
              "command": command_line(), "machine": host_machine(), "version": str(store.dir),
              "encoder": str(a.encoder or store.encoder_dir), "n_objects": n, "n_queries": int(len(queries)),
              "n_copies": int(len(rows)), "threads": a.threads, "readouts": {}}
    asked = a.readouts.split(",")
    if "plain" not in asked or not set(asked) <= set(READOUTS):
        ap.error(f"--readouts: a comma list of {', '.join(READOUTS)} that includes plain (the reference)")
    variants = [(r, float(sm)) for sm in a.smooth_px.split(",") for r in asked]
    for readout, sigma in variants:
        name = readout if sigma == 0 else f"{readout}+smooth{sigma:g}"
        # validated, not model_copy: the card derives the preprocessing's alignment from its readout
        dump = card.model_dump()
        pre = {**dump["preprocess"], "smooth_px": sigma}
        c = ModelCard.model_validate({**dump, "readout": readout, "preprocess": pre})
        encoder.readout = readout
        t0 = time.perf_counter()
        e = embed_array(encoder, c, images)
        seconds = time.perf_counter() - t0
        nn = np.empty((len(queries), 10), dtype=np.int64)
        for b in range(0, len(queries), 2048):  # blocks of queries: 100k x 100k would be 40 GB at once
            qb = queries[b:b + 2048]
            sim = e[qb] @ e.T
            sim[np.arange(len(qb)), qb] = -np.inf
            nn[b:b + len(qb)] = np.argpartition(-sim, 10, axis=1)[:, :10]
        hit = (labels[nn] == labels[queries, None]).mean(1)
        ranks = {}
        for kind, views in copies.items():
            q = embed_array(encoder, c, views) @ e.T
            ranks[kind] = (q > q[np.arange(len(rows)), rows][:, None]).sum(1)
        r = {"precision_at_10": round(float(hit.mean()), 4),
             "per_class": {str(k): round(float(hit[labels[queries] == k].mean()), 4)
                           for k in np.unique(labels[queries])},
             "copy_in_top_5": round(float((ranks["copy"] < 5).mean()), 4),
             "copy_first": round(float((ranks["copy"] == 0).mean()), 4),
             # the same copies' noise without their rotation and flip: what the readout cannot remove
             "noise_only_copy_in_top_5": round(float((ranks["noise_only"] < 5).mean()), 4),
             "encode_s": round(seconds, 1), "objects_per_s": round(n / seconds, 1)}
        result["readouts"][name] = r
        log(name, r)
    ref = next(iter(result["readouts"]))  # plain, or plain+smoothN when every variant is smoothed
    p = result["readouts"][ref]
    result["ratios"] = {f"encode_time_{k}_over_{ref}": round(r["encode_s"] / p["encode_s"], 2)
                        for k, r in result["readouts"].items() if k != ref}
    write_json(a.out / f"readout_{a.name}.json", result)


if __name__ == "__main__":
    main()
