"""A supervised CNN on survey pixels: the baseline the self-supervised encoder is measured against,
and the check that the simulated survey's labels are learnable from pixels and not from a leak.

    nice -n 10 skysift supervised-check --survey /tmp/demo_run/data/demo --epochs 8 \\
        --out bench/results/simulate_labels_check.json --figure docs/img/survey_supervised.png --docs docs/survey.md

`train_supervised(images, targets, preprocess, train_rows=, test_rows=, epochs=, seed=)` trains one
backbone with one head per target (class labels -> cross-entropy; photo-z or any regression ->
Huber loss on the standardised value; unlabelled rows, label -1 or NaN, are left out of that
head's loss) and returns the model, its test-set predictions and metrics against trivial
baselines. The backbone is the same half-width timm ResNet-18 the contrastive encoder uses
(`training.settings.TrainSettings` defaults), from scratch, on `encoder.preprocess.preprocess`
input: a 32 px centre crop, arcsinh-stretched per band at the survey's median sky noise.

Metrics. Classes: accuracy and macro-F1 against always predicting the training set's majority
class ("chance" = that class's share of the test set). Photo-z (Hayat et al. 2021, DESIGN.md §4):
dz = (z_pred - z) / (1 + z), sigma_MAD = 1.4826 median(|dz - median(dz)|), outlier fraction
|dz| > 0.05, against always predicting the training median z.

The leak check fits a logistic regression to features that should carry no class information if
the simulator is honest: robust statistics of the stamp border (median, sigma, mean per band: sky
level and noise), the catalogued noise level, and the object's row number. Each should score near
chance; the CNN on the pixels should not.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from encoder.model import create_backbone, default_backbone_kwargs
from encoder.preprocess import PreprocessConfig, preprocess

# The contrastive encoder's backbone (training.settings.TrainSettings defaults; a test keeps them equal).
DEFAULT_BACKBONE = "resnet18"
DEFAULT_BACKBONE_KWARGS: dict[str, Any] = default_backbone_kwargs(DEFAULT_BACKBONE)
OUTLIER_DZ = 0.05

TargetKind = Literal["class", "photoz", "regress"]


@dataclass(frozen=True)
class Target:
    """One supervised target over all N images.

    kind "class": int labels in [0, len(names)), -1 = unlabelled; "photoz" / "regress": float, NaN
    = unlabelled ("photoz" adds the photo-z metrics).
    """

    kind: TargetKind
    values: np.ndarray
    names: tuple[str, ...] = ()

    def labelled(self) -> np.ndarray:
        return self.values >= 0 if self.kind == "class" else np.isfinite(self.values)


class SupervisedCNN(nn.Module):
    """Backbone + one linear head per target. Regression heads predict standardised values;
    `mean`/`std` buffers turn them back into target units."""

    def __init__(self, in_chans: int, outputs: Mapping[str, int], regression: Sequence[str] = (),
                 backbone: str = DEFAULT_BACKBONE, backbone_kwargs: Mapping[str, Any] | None = None,
                 small_input: bool = True) -> None:
        super().__init__()
        kwargs = dict(DEFAULT_BACKBONE_KWARGS if backbone_kwargs is None else backbone_kwargs)
        self.backbone = create_backbone(backbone, in_chans, small_input, **kwargs)
        feat = int(self.backbone.num_features)
        self.heads = nn.ModuleDict({name: nn.Linear(feat, n) for name, n in outputs.items()})
        self.regression = tuple(regression)
        for name in self.regression:
            self.register_buffer(f"mean_{name}", torch.zeros(()))
            self.register_buffer(f"std_{name}", torch.ones(()))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, C, S, S) preprocessed pixels -> {target: (N, n_out)} logits or standardised values."""
        f = self.backbone(x)
        return {name: head(f) for name, head in self.heads.items()}


@dataclass
class SupervisedResult:
    model: SupervisedCNN
    metrics: dict[str, Any]
    predictions: dict[str, np.ndarray]  # per target, over test_rows: class index or value in target units
    test_rows: np.ndarray
    history: list[dict[str, float]] = field(default_factory=list)


# ------------------------------------------------------------------------------------------- metrics


def photoz_metrics(z_pred: np.ndarray, z_true: np.ndarray) -> dict[str, float]:
    """sigma_MAD, outlier fraction (|dz| > 0.05), bias median(dz), with dz = (z_pred - z) / (1 + z)."""
    z_pred, z_true = np.asarray(z_pred, dtype=np.float64), np.asarray(z_true, dtype=np.float64)
    if z_pred.shape != z_true.shape or z_true.size == 0:
        raise ValueError(f"need equal, non-empty shapes, got {z_pred.shape} and {z_true.shape}")
    dz = (z_pred - z_true) / (1.0 + z_true)
    med = float(np.median(dz))
    return {
        "sigma_mad": float(1.4826 * np.median(np.abs(dz - med))),
        "outlier_fraction": float(np.mean(np.abs(dz) > OUTLIER_DZ)),
        "bias": med,
        "n": int(dz.size),
    }


def classification_metrics(pred: np.ndarray, true: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 over the classes present in `true` or `pred`, per-class recall, confusion
    matrix (rows = true, columns = predicted, over all `names`)."""
    from sklearn.metrics import confusion_matrix, f1_score

    pred, true = np.asarray(pred), np.asarray(true)
    k = len(names)
    cm = confusion_matrix(true, pred, labels=np.arange(k))
    present = np.unique(np.concatenate([true, pred]))
    support = cm.sum(axis=1)
    return {
        "accuracy": float(np.mean(pred == true)),
        "macro_f1": float(f1_score(true, pred, labels=present, average="macro", zero_division=0)),
        "recall": {names[i]: float(cm[i, i] / support[i]) for i in range(k) if support[i]},
        "support": {names[i]: int(support[i]) for i in range(k)},
        "confusion": cm.tolist(),
        "n": int(true.size),
    }


# -------------------------------------------------------------------------------------------- data


def survey_preprocess_config(bands: Sequence[str], pixel_scale_arcsec: float, noise_sigma: np.ndarray,
                             input_size_px: int = 32) -> PreprocessConfig:
    """band_scale = the median sky sigma per band (noise_sigma: (N, C) nanomaggies per pixel)."""
    scale = np.median(np.asarray(noise_sigma, dtype=np.float64), axis=0)
    return PreprocessConfig(bands=tuple(bands), pixel_scale_arcsec=pixel_scale_arcsec, input_size_px=input_size_px,
                            band_scale=tuple(float(s) for s in scale))


def split_rows(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random train/test split of range(n), fixed by `seed`; both parts sorted."""
    perm = np.random.default_rng(np.random.SeedSequence([seed, 0x5B17])).permutation(n)
    n_test = int(round(n * test_fraction))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def _dihedral(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A random one of the 8 flips/right-angle rotations per sample: labels (class, z) don't change."""
    n = x.shape[0]
    m = torch.rand(n, 3, generator=g) < 0.5
    x = torch.where(m[:, 0, None, None, None], x.flip(-1), x)
    x = torch.where(m[:, 1, None, None, None], x.flip(-2), x)
    return torch.where(m[:, 2, None, None, None], x.transpose(-1, -2), x)


# ------------------------------------------------------------------------------------------- train


def train_supervised(
    images: np.ndarray,
    targets: Mapping[str, Target],
    preprocess_cfg: PreprocessConfig,
    *,
    train_rows: np.ndarray,
    test_rows: np.ndarray,
    epochs: int = 8,
    seed: int = 0,
    batch_size: int = 128,
    lr: float = 3e-3,
    weight_decay: float = 5e-4,
    backbone: str = DEFAULT_BACKBONE,
    backbone_kwargs: Mapping[str, Any] | None = None,
    augment: bool = True,
    max_steps: int | None = None,
    device: str | torch.device = "cpu",
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> SupervisedResult:
    """Train a CNN with one head per target on images[train_rows]; evaluate on images[test_rows].

    images: float32 (N, C, H, W) linear flux, as survey readers return it (only the rows in
    train_rows and test_rows are read). AdamW with a one-cycle schedule; the result is a function
    of (data, seed) on the CPU.
    """
    train_rows, test_rows = np.asarray(train_rows, dtype=np.int64), np.asarray(test_rows, dtype=np.int64)
    if np.intersect1d(train_rows, test_rows).size:
        raise ValueError("train_rows and test_rows overlap")
    if not targets:
        raise ValueError("need at least one target")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    device = torch.device(device)
    x_train = preprocess(images[train_rows], preprocess_cfg)
    x_test = preprocess(images[test_rows], preprocess_cfg)

    outputs = {name: (len(t.names) if t.kind == "class" else 1) for name, t in targets.items()}
    regression = [name for name, t in targets.items() if t.kind != "class"]
    model = SupervisedCNN(x_train.shape[1], outputs, regression, backbone, backbone_kwargs).to(device)
    y_train: dict[str, torch.Tensor] = {}
    for name, t in targets.items():
        v = np.asarray(t.values)[train_rows]
        if t.kind == "class":
            y_train[name] = torch.as_tensor(v.astype(np.int64))
        else:
            ok = np.isfinite(v)
            if not ok.any():
                raise ValueError(f"target {name!r} has no labelled training row")
            mean, std = float(np.mean(v[ok])), float(np.std(v[ok]) or 1.0)
            getattr(model, f"mean_{name}").fill_(mean)
            getattr(model, f"std_{name}").fill_(std)
            y_train[name] = torch.as_tensor((v - mean) / std, dtype=torch.float32)

    steps_per_epoch = max(1, len(train_rows) // batch_size)  # drop the ragged last batch (BatchNorm)
    total = epochs * steps_per_epoch if max_steps is None else min(max_steps, epochs * steps_per_epoch)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(total, 1), pct_start=0.15)
    history: list[dict[str, float]] = []
    step = 0
    for epoch in range(epochs):
        model.train()
        t0, losses = time.perf_counter(), []
        perm = torch.randperm(len(train_rows), generator=g)
        for b in range(steps_per_epoch):
            if step >= total:
                break
            idx = perm[b * batch_size : (b + 1) * batch_size]
            x = x_train[idx]
            if augment:
                x = _dihedral(x, g)
            out = model(x.to(device))
            loss = torch.zeros((), device=device)
            for name, t in targets.items():
                y = y_train[name][idx].to(device)
                if t.kind == "class":
                    if (y >= 0).any():
                        loss = loss + F.cross_entropy(out[name], y, ignore_index=-1)
                else:
                    ok = torch.isfinite(y)
                    if ok.any():
                        loss = loss + F.huber_loss(out[name][ok, 0], y[ok], delta=1.0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            step += 1
        dt_s = time.perf_counter() - t0
        rec = {"epoch": epoch, "steps": step, "train_loss": float(np.mean(losses)) if losses else float("nan"),
               "seconds": dt_s, "images_per_s": len(losses) * batch_size / max(dt_s, 1e-9)}
        history.append(rec)
        if on_epoch:
            on_epoch(rec)
        if step >= total:
            break

    raw = predict(model, x_test, device=device)
    predictions, metrics = {}, {}
    for name, t in targets.items():
        true = np.asarray(t.values)[test_rows]
        lab = t.labelled()[test_rows]
        lab_train = t.labelled()[train_rows]
        if t.kind == "class":
            pred = raw[name].argmax(axis=1)
            predictions[name] = pred
            m = classification_metrics(pred[lab], true[lab], t.names)
            majority = int(np.bincount(np.asarray(t.values)[train_rows][lab_train], minlength=len(t.names)).argmax())
            base = classification_metrics(np.full(lab.sum(), majority), true[lab], t.names)
            m["chance"] = {"predict": t.names[majority], "accuracy": base["accuracy"], "macro_f1": base["macro_f1"]}
        else:
            pred = raw[name][:, 0]
            predictions[name] = pred
            median = float(np.median(np.asarray(t.values)[train_rows][lab_train]))
            if t.kind == "photoz":
                m = photoz_metrics(pred[lab], true[lab])
                m["baseline_median_z"] = {"predict": median, **photoz_metrics(np.full(lab.sum(), median), true[lab])}
            else:
                err = pred[lab] - true[lab]
                m = {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err))), "n": int(lab.sum()),
                     "baseline_median": {"rmse": float(np.sqrt(np.mean((median - true[lab]) ** 2)))}}
        metrics[name] = m
    return SupervisedResult(model=model, metrics=metrics, predictions=predictions, test_rows=test_rows,
                            history=history)


@torch.no_grad()
def predict(model: SupervisedCNN, x: torch.Tensor, batch_size: int = 512,
            device: str | torch.device = "cpu") -> dict[str, np.ndarray]:
    """Preprocessed (N, C, S, S) -> {target: (N, n_out)}: class logits, or values in target units."""
    model.eval()
    parts: dict[str, list[np.ndarray]] = {name: [] for name in model.heads}
    for i in range(0, len(x), batch_size):
        out = model(x[i : i + batch_size].to(device))
        for name, v in out.items():
            if name in model.regression:
                v = v * getattr(model, f"std_{name}") + getattr(model, f"mean_{name}")
            parts[name].append(v.float().cpu().numpy())
    return {name: np.concatenate(p) if p else np.zeros((0, model.heads[name].out_features), np.float32)
            for name, p in parts.items()}


# ---------------------------------------------------------------------------------------- leak check


def border_features(images: np.ndarray, width: int = 4) -> np.ndarray:
    """(N, C, H, W) -> (N, 3C): median, robust sigma (1.4826 MAD) and mean of the outer `width`-px
    frame of each band: the sky level and noise a generator could leave class-dependent."""
    n, c, h, w = images.shape
    mask = np.zeros((h, w), dtype=bool)
    mask[:width], mask[-width:], mask[:, :width], mask[:, -width:] = True, True, True, True
    frame = images[:, :, mask].astype(np.float64)  # (N, C, P)
    med = np.median(frame, axis=2)
    sigma = 1.4826 * np.median(np.abs(frame - med[..., None]), axis=2)
    return np.concatenate([med, sigma, frame.mean(axis=2)], axis=1)


def leak_check(features: Mapping[str, np.ndarray], labels: np.ndarray, names: Sequence[str], *,
               train_rows: np.ndarray, test_rows: np.ndarray, seed: int = 0) -> dict[str, dict[str, float]]:
    """For each feature set (N, F): multinomial logistic regression on standardised features ->
    test accuracy and macro-F1. Near the majority-class baseline means no leak."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = {}
    for name, f in features.items():
        f = np.asarray(f, dtype=np.float64).reshape(len(labels), -1)
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
        clf.fit(f[train_rows], labels[train_rows])
        m = classification_metrics(clf.predict(f[test_rows]), labels[test_rows], names)
        out[name] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "n_features": int(f.shape[1])}
    return out


# ------------------------------------------------------------------------------- entry point + report

DOCS_BEGIN = "<!-- supervised_check:begin (generated by skysift supervised-check --docs; do not edit) -->"
DOCS_END = "<!-- supervised_check:end -->"


def run_check(survey_dir: Path, epochs: int, seed: int, test_fraction: float, limit: int | None,
              command: str) -> tuple[dict, Any]:
    """Train and leak-check on the first `limit` objects; `command` (the line that ran it) is recorded."""
    from survey.native import NativeSurvey

    survey = NativeSurvey(survey_dir)
    cat = survey.catalog
    n = len(survey) if limit is None else min(limit, len(survey))
    images = survey.images(np.arange(n))
    names = tuple(sorted(set(cat["class"][:n].tolist())))
    labels = np.array([names.index(c) for c in cat["class"][:n]])
    is_galaxy = ~np.isin(cat["class"][:n], ["star", "lens"])
    z = np.where(is_galaxy, cat["z"][:n], np.nan)
    noise = np.stack([cat[f"noise_sigma_{b}"][:n] for b in survey.bands], 1)
    cfg = survey_preprocess_config(survey.bands, survey.pixel_scale_arcsec, noise)
    train, test = split_rows(n, test_fraction, seed)
    t0, cpu0 = time.perf_counter(), time.process_time()
    res = train_supervised(images, {"class": Target("class", labels, names), "z": Target("photoz", z)}, cfg,
                           train_rows=train, test_rows=test, epochs=epochs, seed=seed,
                           on_epoch=lambda r: print(  # noqa: T201 (entry point progress)
                               f"epoch {r['epoch']} loss {r['train_loss']:.3f} {r['images_per_s']:.0f} img/s",
                               file=sys.stderr, flush=True))
    train_s, train_cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    leaks = leak_check({"border pixels (median, sigma, mean per band)": border_features(images),
                        "catalogued noise_sigma per band": noise, "row number": np.arange(n)[:, None]},
                       labels, names, train_rows=train, test_rows=test, seed=seed)
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        sha = "unknown"
    result = {
        "check": "supervised_labels",
        "question": "are the simulated class and redshift learnable from pixels, and not from a leak?",
        "git_sha": sha,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command,
        "survey": {"path": str(survey_dir), "objects": n, "bands": list(survey.bands)},
        "settings": {"epochs": epochs, "seed": seed, "test_fraction": test_fraction, "backbone": DEFAULT_BACKBONE,
                     "backbone_kwargs": DEFAULT_BACKBONE_KWARGS, "preprocess": cfg.model_dump(mode="json"),
                     "batch_size": 128, "optimizer": "AdamW lr 3e-3 one-cycle, wd 5e-4",
                     "augment": "random flips and transposes (8 dihedral orientations)",
                     "photoz_rows": "galaxies only (stars and lenses excluded)", "threads": torch.get_num_threads()},
        "train_seconds": train_s,
        "train_cpu_seconds": train_cpu_s,
        "history": res.history,
        "metrics": res.metrics,
        "leak_check": leaks,
        "n_train": int(len(train)),
        "n_test": int(len(test)),
    }
    return result, res


def markdown(r: dict[str, Any]) -> str:
    c, z = r["metrics"]["class"], r["metrics"]["z"]
    lines = [
        f"`{r['command']}` ({r['date']}, git {r['git_sha'][:10]}): {r['n_train']:,} train / {r['n_test']:,} test "
        f"objects of `{r['survey']['path']}`, {r['settings']['epochs']} epochs in {r['train_seconds'] / 60:.1f} min "
        f"with {r['settings']['threads']} torch thread(s)"
        + (f", {r['train_cpu_seconds'] / 60:.1f} CPU-min" if "train_cpu_seconds" in r else "")
        + " (shared machine).",
        "",
        "| task | model | accuracy | macro-F1 |",
        "|---|---|---:|---:|",
        f"| class (8) | CNN on pixels | **{c['accuracy']:.3f}** | **{c['macro_f1']:.3f}** |",
        f"| class (8) | chance: always `{c['chance']['predict']}` | {c['chance']['accuracy']:.3f} | "
        f"{c['chance']['macro_f1']:.3f} |",
    ]
    for name, m in r["leak_check"].items():
        lines.append(f"| class (8) | leak check: logistic regression on {name} | {m['accuracy']:.3f} | "
                     f"{m['macro_f1']:.3f} |")
    b = z["baseline_median_z"]
    lines += [
        "",
        "| photo-z (galaxies) | sigma_MAD | outlier fraction (abs dz > 0.05) | bias median(dz) | n |",
        "|---|---:|---:|---:|---:|",
        f"| CNN on pixels | **{z['sigma_mad']:.4f}** | **{z['outlier_fraction']:.3f}** | {z['bias']:+.4f} | {z['n']} |",
        f"| always the training median z = {b['predict']:.3f} | {b['sigma_mad']:.4f} | {b['outlier_fraction']:.3f} | "
        f"{b['bias']:+.4f} | {b['n']} |",
        "",
        "Recall per class (test): " + ", ".join(f"{k} {v:.2f} (n={c['support'][k]})" for k, v in c["recall"].items()),
    ]
    return "\n".join(lines)


def figure(r: dict[str, Any], res: Any, z_true: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = r["metrics"]["class"]
    names = list(c["support"])
    cm = np.asarray(c["confusion"], dtype=np.float64)
    norm = cm / cm.sum(axis=1, keepdims=True).clip(1)
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.6))
    ax[0].imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            if cm[i, j]:
                ax[0].text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=7,
                           color="white" if norm[i, j] > 0.5 else "black")
    ax[0].set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax[0].set_yticks(range(len(names)), names, fontsize=8)
    ax[0].set(xlabel="predicted", ylabel="true",
              title=f"class: accuracy {c['accuracy']:.2f}, macro-F1 {c['macro_f1']:.2f} "
                    f"(chance {c['chance']['accuracy']:.2f})")
    zp = res.predictions["z"]
    ok = np.isfinite(z_true)
    zm = r["metrics"]["z"]
    ax[1].scatter(z_true[ok], zp[ok], s=3, alpha=0.5)
    lim = [0, max(0.7, float(np.quantile(z_true[ok], 0.995)))]
    ax[1].plot(lim, lim, "k-", lw=0.8)
    for s in (-1, 1):
        ax[1].plot(lim, [v + s * OUTLIER_DZ * (1 + v) for v in lim], "k:", lw=0.8)
    ax[1].set(xlim=lim, ylim=lim, xlabel="true z", ylabel="CNN photo-z", aspect="equal",
              title=f"photo-z (galaxies): sigma_MAD {zm['sigma_mad']:.3f}, outliers {zm['outlier_fraction']:.2f}\n"
                    f"(median-z baseline: {zm['baseline_median_z']['sigma_mad']:.3f}, "
                    f"{zm['baseline_median_z']['outlier_fraction']:.2f})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def update_docs(docs: Path, r: dict[str, Any]) -> None:
    text = docs.read_text()
    if DOCS_BEGIN not in text or DOCS_END not in text:
        raise SystemExit(f"{docs}: markers for the supervised check not found")
    head, rest = text.split(DOCS_BEGIN, 1)
    docs.write_text(head + DOCS_BEGIN + "\n" + markdown(r) + "\n" + DOCS_END + rest.split(DOCS_END, 1)[1])


def check(survey_dir: Path, *, epochs: int, seed: int, test_fraction: float, limit: int | None, threads: int,
          command: str, out: Path | None = None, figure_path: Path | None = None,
          docs: Path | None = None) -> dict[str, Any]:
    """`skysift supervised-check`: run_check, then the results JSON, the figure and the docs table
    (each only when its path is given). Returns the result."""
    torch.set_num_threads(threads)
    result, res = run_check(survey_dir, epochs, seed, test_fraction, limit, command)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
    if figure_path:
        from survey.native import NativeSurvey

        cat = NativeSurvey(survey_dir).catalog
        rows = res.test_rows
        z_true = np.where(~np.isin(cat["class"][rows], ["star", "lens"]), cat["z"][rows], np.nan)
        figure(result, res, z_true, figure_path)
    if docs:
        update_docs(docs, result)
    return result
