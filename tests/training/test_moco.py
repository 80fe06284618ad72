"""MoCo v2: the loss against a slow reference, the momentum and queue arithmetic, the settings'
guards, and the loss falling when the whole loop trains on the tiny survey."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from encoder.model import Encoder
from training.augment import AugmentSettings
from training.dist import shuffled_key_forward
from training.loss import info_nce
from training.moco import MoCo
from training.settings import TrainSettings

TINY_BACKBONE = {"channels": [8, 16, 32, 64], "stem_width": 8}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Two OpenMP threads on two cores shared with other jobs spin-wait each other to a crawl
    # (7x slower measured); these tests check behaviour, not speed.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_moco(queue_size: int = 10, proj_dim: int = 4, momentum: float = 0.9) -> MoCo:
    torch.manual_seed(0)
    enc = Encoder("resnet18", 3, proj_dim, 16, True, TINY_BACKBONE)
    return MoCo(enc, queue_size, momentum, temperature=0.2)


def slow_info_nce(q, k, queue, t):
    """-log(exp(q.k+/T) / (exp(q.k+/T) + sum_j exp(q.queue_j/T))), one sample at a time."""
    losses = []
    for i in range(q.shape[0]):
        pos = math.exp(float(q[i] @ k[i]) / t)
        neg = sum(math.exp(float(q[i] @ queue[:, j]) / t) for j in range(queue.shape[1]))
        losses.append(-math.log(pos / (pos + neg)))
    return sum(losses) / len(losses)


def test_info_nce_matches_slow_reference():
    g = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(6, 8, generator=g, dtype=torch.float64), dim=1)
    k = F.normalize(q + 0.3 * torch.randn(6, 8, generator=g, dtype=torch.float64), dim=1)
    queue = F.normalize(torch.randn(8, 20, generator=g, dtype=torch.float64), dim=0)
    loss, logits = info_nce(q, k, queue, 0.2)
    assert logits.shape == (6, 21)
    torch.testing.assert_close(logits[:, 0], (q * k).sum(1) / 0.2)  # the positive is column 0
    assert float(loss) == pytest.approx(slow_info_nce(q, k, queue, 0.2), rel=1e-10)


def test_momentum_update_is_m_k_plus_one_minus_m_q():
    moco = tiny_moco(momentum=0.9)
    with torch.no_grad():
        for p in moco.encoder_q.parameters():
            p.add_(torch.randn_like(p))
    k_before = [p.clone() for p in moco.encoder_k.parameters()]
    moco._momentum_update()
    for pq, pk, k0 in zip(moco.encoder_q.parameters(), moco.encoder_k.parameters(), k_before, strict=True):
        torch.testing.assert_close(pk, 0.9 * k0 + 0.1 * pq)
        assert not pk.requires_grad


def test_enqueue_is_fifo_and_wraps_around():
    moco = tiny_moco(queue_size=10, proj_dim=4)
    batches = [torch.full((4, 4), float(i + 1)) for i in range(3)]  # keys 1, 2, 3 in batches of 4
    for b in batches:
        moco._enqueue(b)
    # 0-3 <- 1, 4-7 <- 2, then 8, 9 and (wrapping) 0, 1 <- 3
    assert moco.queue[0].tolist() == [3, 3, 1, 1, 2, 2, 2, 2, 3, 3]
    assert int(moco.queue_ptr) == 2


def test_shuffled_key_forward_returns_keys_in_input_order():
    """In eval mode BatchNorm ignores the batch, so shuffling must be invisible: row i is x[i]'s key."""
    moco = tiny_moco(proj_dim=4).eval()
    x = torch.randn(8, 3, 32, 32)
    keys = shuffled_key_forward(moco.encoder_k.project, x, torch.Generator().manual_seed(1))
    torch.testing.assert_close(keys, moco.encoder_k.project(x))


def test_settings_reject_queue_not_multiple_of_batch():
    with pytest.raises(ValidationError, match="multiple of batch_size"):
        TrainSettings(batch_size=48, queue_size=100)
    TrainSettings(batch_size=50, queue_size=100)


@pytest.mark.parametrize("bad", [{"queue_sise": 4096}, {"augment": {"crop_size": 32}}])
def test_settings_reject_misspelt_keys(bad):
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        TrainSettings(**bad)


def test_settings_reject_nonsense():
    for bad in [{"batch_size": 1, "queue_size": 4}, {"momentum": 1.0}, {"temperature": 0.0}, {"checkpoint_every": 0},
                {"max_steps": 0}]:
        with pytest.raises(ValidationError):
            TrainSettings(**bad)


def test_loss_falls_on_tiny_survey(tiny_survey: Path, tmp_path: Path):
    """40 steps of the real loop (HDF5 -> augment -> MoCo). Once the queue holds only real keys
    (step 2) the loss starts near log(1 + K) = 4.2 and must fall well below it. Colour, seeing and
    noise augmentations are off so 40 steps suffice; measured drops 0.6-0.9 over four seeds."""
    from training.loop import train

    s = TrainSettings(
        survey=tiny_survey, out_dir=tmp_path, epochs=50, max_steps=40, batch_size=32, queue_size=64,
        lr_per_256=1.2, schedule="constant", backbone_kwargs=TINY_BACKBONE, proj_hidden=64, proj_dim=32,
        augment=AugmentSettings(crop_size_px=32, redden=False, blur=False, noise=False),
        workers=0, monitor_size=0, device="cpu", log_every=1, seed=0,
    )
    losses: list[float] = []
    train(s, on_step=lambda r: losses.append(r["loss"]) if "loss" in r else None)
    assert len(losses) == 40 and all(math.isfinite(v) for v in losses)
    filled = s.queue_size // s.batch_size
    first, last = sum(losses[filled : filled + 5]) / 5, sum(losses[-5:]) / 5
    assert first > 3.8  # near log(65): nothing learnt yet
    assert last < first - 0.3, f"loss did not fall: first five {first:.3f}, last five {last:.3f}"
