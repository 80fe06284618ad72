"""Ablation of MoCo settings on a labelled real survey: same-class precision@10 as training goes.

`bench_real_retrieval.py` measures the product end to end (ingest -> train -> index) once; this
script is the quick loop for finding a recipe: it holds an ingested survey in memory, trains MoCo
with the product's own pieces (``training.loop.build_moco`` / ``train_step``, ``training.augment``,
``encoder.preprocess``) plus a few candidate augmentations that the product does not have yet
(per-band and overall brightness jitter, a noise floor in units of the band's spread, a radial
aperture that fades out neighbours), and every ``--eval-every`` epochs scores the encoder's
representation several ways on the labelled objects:

- ``plain``: the pooled backbone on the centre crop (what ``skysift index`` stores today);
- ``tta8``: the mean of the 8 rotations/flips of the crop (a rotation-invariant embedding);
- ``c``, ``c_std``, ``c_wh32``: centred, standardised, and PCA-whitened to 32 dims (fitted on the
  survey itself), each also on the TTA mean (``c_tta*``);
- ``proj``: the projection head's output.

Epoch 0 is the randomly initialised network, the baseline every run is compared with in one run.
Two baselines that need no network are measured once per run on the same objects: PCA-50 of the
raw pixels at several centre crops, and four hand-made morphology parameters an astronomer would
reach for first (two colours, axis ratio from second moments, concentration, size), standardised,
with Euclidean neighbours. They say how much of the classes a kNN can get from the pixels at all.

``--supervised-folds K`` adds a reference that *uses the labels*: the same backbone trained from
scratch as a classifier (cross-entropy weighted by 1/sqrt(class size), the run's own augmentations,
AdamW, one-cycle schedule) in K folds, so that every object is scored by a network that never saw
its label; precision@10 is then measured on its out-of-fold class log-probabilities (Euclidean)
and on its penultimate features (cosine), both the mean over the 8 rotations/flips. A
self-supervised representation is not expected to beat it; where it is low, the classes are not
separable by a kNN at this resolution by any means, labels or not.

    .venv/bin/python bench/ablate_real_ssl.py --survey runs/gz1/survey \\
        --labels ../shared/data/real/gz1_sdss_dev/labels.csv --epochs 20 --name B_strong \\
        --jitter 0.1 --gain 0.3 --noise-floor 0.3 --aug '{"scale_min": 0.8, "scale_max": 1.25}'

Writes bench/results/real_ssl_ablation_<name>.json (rewritten after every evaluation, so a run
stopped early keeps what it measured).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path

from _common import RESULTS_DIR, command_line, git_sha, host_machine, log, utc_now_iso, write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--survey", type=Path, required=True, help="an ingested survey (skysift ingest --out)")
    ap.add_argument("--labels", type=Path, required=True, help="CSV with the id and label columns")
    ap.add_argument("--id-column", default="objid")
    ap.add_argument("--label-column", default="gz1_class_name")
    ap.add_argument("--merge", default="spiral_cw=spiral,spiral_acw=spiral", help="label=coarse,...")
    ap.add_argument("--classes", default="elliptical,edge_on,spiral,merger", help="the scored classes")
    ap.add_argument("--epochs", type=int, default=20, help="0: the baselines and the random network only")
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--aug", default="{}", help="AugmentSettings fields as JSON (redden is off)")
    ap.add_argument("--train", default="{}", help="TrainSettings fields as JSON")
    ap.add_argument("--jitter", type=float, default=0.0, help="per-band brightness jitter, sigma of ln(gain)")
    ap.add_argument("--gain", type=float, default=0.0, help="overall brightness jitter, sigma of ln(gain)")
    ap.add_argument("--noise-floor", type=float, default=0.0,
                    help="add Gaussian noise of sigma U(0, f) x the band's spread (display surveys)")
    ap.add_argument("--aperture", type=float, default=0.0,
                    help="fade the input to 0 beyond this radius (px of the crop), cosine taper; 0 = off")
    ap.add_argument("--supervised-folds", type=int, default=0,
                    help="K >= 2: also measure the supervised ceiling (K-fold CNN on the labels); 0 = off")
    ap.add_argument("--supervised-epochs", type=int, default=6)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N objects (smoke runs)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    ap.add_argument("--name", default="run")
    a = ap.parse_args()

    import numpy as np
    import torch
    import torch.nn.functional as F

    from encoder.preprocess import PreprocessConfig, for_survey, preprocess
    from survey.native import NativeSurvey
    from training.augment import AugmentSettings, augment
    from training.loop import build_moco, lr_at, train_step
    from training.settings import TrainSettings, resolve_sizes

    if a.threads:
        torch.set_num_threads(a.threads)
    survey = NativeSurvey(a.survey)
    n = len(survey) if not a.limit else min(a.limit, len(survey))
    images = torch.from_numpy(np.ascontiguousarray(survey.images(np.arange(n)), dtype=np.float32))
    merge = dict(kv.split("=") for kv in a.merge.split(",") if kv)
    with open(a.labels, newline="") as f:
        label_of = {r[a.id_column]: merge.get(r[a.label_column], r[a.label_column]) for r in csv.DictReader(f)}
    labels = np.array([label_of.get(str(i), "") for i in survey.catalog["object_id"][:n]])
    classes = a.classes.split(",")
    scored = np.isin(labels, classes)

    aug = AugmentSettings(**{"redden": False, **json.loads(a.aug)})
    s = resolve_sizes(TrainSettings(epochs=max(1, a.epochs), augment=aug, **json.loads(a.train)), n)
    units = survey.units
    pre = for_survey(PreprocessConfig(bands=survey.bands, pixel_scale_arcsec=survey.pixel_scale_arcsec,
                                      input_size_px=aug.crop_size_px, band_scale=(1.0,) * len(survey.bands),
                                      kind=units.kind), units)
    c = len(survey.bands)
    model, opt = build_moco(s, c, torch.device("cpu"))
    spread = torch.tensor([b.spread for b in units.per_band]).view(1, c, 1, 1)
    noise = torch.tensor([b.noise for b in units.per_band])
    offset = torch.tensor(pre.band_offset or (0.0,) * c).view(1, c, 1, 1)
    size = aug.crop_size_px
    yy, xx = torch.meshgrid(torch.arange(size) - (size - 1) / 2, torch.arange(size) - (size - 1) / 2, indexing="ij")
    r = (yy**2 + xx**2).sqrt()
    window = (torch.ones(size, size) if not a.aperture else
              0.5 * (1 + torch.cos(math.pi * ((r - a.aperture) / (0.35 * a.aperture)).clamp(0, 1))))
    window = window.view(1, 1, size, size)
    gen, shuffle = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)

    def precision(emb: torch.Tensor) -> dict[str, float]:
        return precision_at_10(F.normalize(emb, dim=1).numpy()[scored], labels[scored], classes)

    @torch.inference_mode()
    def evaluate() -> dict[str, dict[str, float]]:
        enc = model.encoder_q
        enc.eval()
        x = preprocess(images, pre) * window

        def feats(v: torch.Tensor) -> torch.Tensor:
            return torch.cat([enc.features(v[i:i + 512]) for i in range(0, n, 512)])

        views = [feats(torch.rot90(x, k % 4, dims=(-2, -1)).flip(-1) if k >= 4 else torch.rot90(x, k, dims=(-2, -1)))
                 for k in range(8)]
        out = {"plain": precision(views[0]),
               "tta8": precision(torch.stack([F.normalize(v, dim=1) for v in views]).mean(0))}
        for name, f in (("c", views[0]), ("c_tta", torch.stack(views).mean(0))):
            z = f - f.mean(0)
            out[name] = precision(z)
            out[name + "_std"] = precision(z / (z.std(0) + 1e-6))
            out[name + "_wh32"] = precision(torch.linalg.svd(z, full_matrices=False)[0][:, :32])
        out["proj"] = precision(torch.cat([enc.project(x[i:i + 512]) for i in range(0, n, 512)]))
        enc.train()
        return out

    def views_of(rows: torch.Tensor) -> list[torch.Tensor]:
        x, m = images[rows], len(rows)
        out = []
        for _ in range(2):
            v = augment(x, ebv=torch.zeros(m), psf_fwhm_arcsec=torch.full((m, c), 0.1),
                        noise_sigma=noise.expand(m, c), coeffs=torch.zeros(c),
                        pixel_scale_arcsec=survey.pixel_scale_arcsec, settings=aug, generator=gen)
            if a.jitter or a.gain:
                g = torch.exp(a.jitter * torch.randn(m, c, 1, 1, generator=gen)
                              + a.gain * torch.randn(m, 1, 1, 1, generator=gen))
                v = (v - offset) * g + offset
            if a.noise_floor:
                v = v + a.noise_floor * torch.rand(m, 1, 1, 1, generator=gen) * spread * torch.randn(
                    v.shape, generator=gen)
            out.append(preprocess(v, pre, crop=False) * window)
        return out

    result = {"benchmark": "real_ssl_ablation", "name": a.name, "date": utc_now_iso(), "git_sha": git_sha(),
              "command": command_line(), "machine": host_machine(), "survey": str(a.survey), "n_objects": n,
              "batch_size": s.batch_size, "queue_size": s.queue_size, "augment": aug.model_dump(),
              "evals": []}
    path = a.out / f"real_ssl_ablation_{a.name}.json"

    def record(epoch: int, seconds: float) -> None:
        r = evaluate()
        result["evals"].append({"epoch": epoch, "train_s": round(seconds, 1), **r})
        write_json(path, result)
        log(f"epoch {epoch}: " + ", ".join(f"{k} {v['macro']:.3f}" for k, v in r.items()))

    result["baselines"] = baselines(images.numpy()[scored], labels[scored], classes)
    log("baselines: " + ", ".join(f"{k} {v['macro']:.3f}" for k, v in result["baselines"].items()))
    if a.supervised_folds:
        if a.supervised_folds < 2:
            ap.error("--supervised-folds needs at least 2 folds (or 0 for none)")
        t0 = time.perf_counter()
        rows = np.nonzero(scored)[0]
        y = np.array([classes.index(v) for v in labels[rows]])
        prob, feat = supervised_out_of_fold(
            s, c, y, lambda r: views_of(torch.from_numpy(rows[r]))[0], preprocess(images[rows], pre) * window,
            a.supervised_folds, a.supervised_epochs, gen)
        result["supervised_ceiling"] = {
            "folds": a.supervised_folds, "epochs": a.supervised_epochs, "seconds": round(time.perf_counter() - t0, 1),
            "accuracy": round(float((prob.argmax(1) == y).mean()), 4),
            "logprob": precision_at_10(np.log(prob + 1e-4), labels[rows], classes, euclidean=True),
            "features": precision_at_10(feat / np.linalg.norm(feat, axis=1, keepdims=True), labels[rows], classes)}
        write_json(path, result)
        log("supervised ceiling: " + ", ".join(f"{k} {v['macro']:.3f}" for k, v in result["supervised_ceiling"].items()
                                                if isinstance(v, dict)))
    record(0, 0.0)
    steps = n // s.batch_size
    total, base = steps * s.epochs, s.lr_per_256 * s.batch_size / 256
    step, t0 = 0, time.perf_counter()
    for epoch in range(1, a.epochs + 1):
        order = torch.randperm(n, generator=shuffle)
        for b in range(steps):
            train_step(model, opt, views_of(order[b * s.batch_size:(b + 1) * s.batch_size]), shuffle,
                       lr_at(step, total, base, s), False)
            step += 1
        if epoch % a.eval_every == 0 or epoch == s.epochs:
            record(epoch, time.perf_counter() - t0)


def supervised_out_of_fold(s, n_bands, y, train_views, eval_x, folds, epochs, gen):
    """Out-of-fold class probabilities (N, K) and penultimate features (N, D) of the settings'
    backbone trained from scratch on the labels y (N,) in `folds` stratified folds; `train_views`
    maps row positions to one augmented, preprocessed view each, `eval_x` (N, C, S, S) is the
    preprocessed centre crop, read out as the mean over its 8 rotations/flips."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from sklearn.model_selection import StratifiedKFold
    from torch import nn

    from encoder.model import create_backbone, dihedral_views, feature_dim

    k = int(y.max()) + 1
    weight = torch.tensor((np.bincount(y, minlength=k).max() / np.maximum(np.bincount(y, minlength=k), 1)) ** 0.5,
                          dtype=torch.float32)
    target = torch.from_numpy(y)
    prob, feat = np.zeros((len(y), k), np.float32), None
    splits = StratifiedKFold(folds, shuffle=True, random_state=0).split(y, y)
    for train_rows, test_rows in splits:
        backbone = create_backbone(s.backbone, n_bands, s.small_input, **s.backbone_kwargs)
        head = nn.Linear(feature_dim(backbone), k)
        model = nn.Sequential(backbone, head)
        batch = min(s.batch_size, len(train_rows))
        steps = max(1, epochs * (len(train_rows) // batch))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-3, total_steps=steps)
        model.train()
        for step in range(steps):
            if step % (len(train_rows) // batch) == 0:
                order = train_rows[torch.randperm(len(train_rows), generator=gen).numpy()]
            r = order[(step % (len(train_rows) // batch)) * batch:][:batch]
            loss = F.cross_entropy(model(train_views(r)), target[r], weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.inference_mode():
            views = dihedral_views(eval_x[test_rows])
            f = torch.stack([backbone(v) for v in views])
            p = F.softmax(head(f), dim=-1).mean(0)
        if feat is None:
            feat = np.zeros((len(y), f.shape[-1]), np.float32)
        prob[test_rows], feat[test_rows] = p.numpy(), f.mean(0).numpy()
    return prob, feat


def morphology_features(x):
    """(N, C, H, W) display or flux stamps -> (N, C + 3): colours, axis ratio, concentration, size.

    Background = the median of the top 4 rows; moments and apertures on the summed bands within
    the centre third of the stamp, so that neighbours near the edge do not enter.
    """
    import numpy as np

    x = x - np.median(x[:, :, :4, :], axis=(2, 3), keepdims=True)
    h = x.shape[-1]
    yy, xx = np.mgrid[:h, :h] - (h - 1) / 2
    r = np.hypot(yy, xx)
    w = np.clip(x.sum(1), 0, None) * (r < h / 6)
    tot = w.sum((1, 2)) + 1e-9
    mx, my = (w * xx).sum((1, 2)) / tot, (w * yy).sum((1, 2)) / tot
    dx, dy = xx[None] - mx[:, None, None], yy[None] - my[:, None, None]
    qxx, qyy, qxy = ((w * a * b).sum((1, 2)) / tot for a, b in ((dx, dx), (dy, dy), (dx, dy)))
    tr, det = qxx + qyy, qxx * qyy - qxy**2
    disc = np.sqrt(np.maximum(tr**2 / 4 - det, 0))
    axis = np.sqrt(np.maximum(tr / 2 - disc, 1e-9) / np.maximum(tr / 2 + disc, 1e-9))
    flux = [(np.clip(x, 0, None) * (r < h * f)).sum((2, 3)) + 1e-6 for f in (1 / 32, 1 / 12, 1 / 6)]
    colours = [np.log(flux[1][:, i] / flux[1][:, -1]) for i in range(x.shape[1] - 1)]
    conc = np.log(flux[0].sum(1) / flux[2].sum(1))
    return np.stack([*colours, axis, conc, np.log(tr + 1e-9)], 1)


def precision_at_10(e, labels, classes, euclidean: bool = False) -> dict[str, float]:
    """Per-class and macro fraction of the 10 nearest neighbours (itself excluded) sharing the class.
    Cosine on rows already L2-normalised, or Euclidean."""
    import numpy as np

    sim = -(np.square(e).sum(1)[:, None] - 2 * e @ e.T + np.square(e).sum(1)[None]) if euclidean else e @ e.T
    np.fill_diagonal(sim, -np.inf)
    nn = np.argpartition(-sim, 10, axis=1)[:, :10]
    hit = (labels[nn] == labels[:, None]).mean(1)
    per = {k: round(float(hit[labels == k].mean()), 4) for k in classes if (labels == k).any()}
    return {"macro": round(float(np.mean(list(per.values()))), 4), **per}


def baselines(x, labels, classes) -> dict[str, dict[str, float]]:
    """PCA-50 at centre crops (whole, 1/2, 3/8, 1/4; cosine) and morphology_features (standardised,
    Euclidean), on the scored objects' stamps x (N, C, H, W)."""
    import numpy as np
    from sklearn.decomposition import PCA

    h, out = x.shape[-1], {}
    for crop in sorted({h, h // 2, 3 * h // 8, h // 4}, reverse=True):
        t = (h - crop) // 2
        z = PCA(50, random_state=0).fit_transform(x[:, :, t:t + crop, t:t + crop].reshape(len(x), -1))
        out[f"pca50_crop{crop}"] = precision_at_10(z / np.linalg.norm(z, axis=1, keepdims=True), labels, classes)
    f = morphology_features(x)
    out["morphology_features"] = precision_at_10((f - f.mean(0)) / (f.std(0) + 1e-9), labels, classes,
                                                 euclidean=True)
    return out


if __name__ == "__main__":
    main()
