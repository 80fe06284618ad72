"""Streaming batches from native survey shards: pixels plus the per-object observing conditions
the augmentations need (E(B-V), PSF FWHM, sky noise). Worker processes read HDF5 batch by batch,
unless the survey's pixels fit the memory allowed for them (TrainSettings.cache_gb): then they are
read once, in contiguous slices, and every epoch indexes memory (a 6,264-object survey of 64 px
stamps is 0.3 GB; its batches came 2x faster than from two worker processes reading rows).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from survey.native import NativeSurvey
from survey.units import RING_PX, border_ring, robust_noise

DEFAULT_FWHM_ARCSEC = 1.3


def border_noise_sigma(images: np.ndarray, width: int = RING_PX) -> np.ndarray:
    """Robust per-band sky noise (N, C) from the stamp's outer ring (sigma-clipped 1.4826 * MAD),
    used when the catalog does not record depth; the same measure ingest records (survey.units)."""
    return robust_noise(border_ring(images, width))[1]


class Conditions:
    """Per-object E(B-V) (N,), PSF FWHM (N, C) and noise sigma (N, C) from catalog columns when
    present (`ebv`, `psf_fwhm_<b>` or `psfsize_<b>`, `noise_sigma_<b>`)."""

    def __init__(self, survey: NativeSurvey) -> None:
        cat, bands, n = survey.catalog, survey.bands, len(survey)
        self.ebv = np.asarray(cat["ebv"], dtype=np.float32) if "ebv" in cat else np.zeros(n, np.float32)
        fwhm = []
        for b in bands:
            col = next((c for c in (f"psf_fwhm_{b}", f"psfsize_{b}") if c in cat), None)
            fwhm.append(cat[col] if col else np.full(n, DEFAULT_FWHM_ARCSEC))
        self.fwhm = np.stack(fwhm, 1).astype(np.float32)
        cols = [f"noise_sigma_{b}" for b in bands]
        self.noise = np.stack([cat[c] for c in cols], 1).astype(np.float32) if all(c in cat for c in cols) else None


class SurveyBatches(Dataset):
    """Indexable by a whole batch of rows: one call per batch, so a worker process reads a batch."""

    def __init__(self, root: Path, memory_limit_bytes: int = 0) -> None:
        self.root = Path(root)
        self.survey = NativeSurvey(self.root)
        self.conditions = Conditions(self.survey)
        n = len(self.survey)
        need = n * int(np.prod(self.survey.image_shape)) * 4
        self.cached: np.ndarray | None = None  # every image, NaN filled, when they fit the limit
        self._cached_noise: np.ndarray | None = None
        if 0 < need <= memory_limit_bytes:
            chunk = max(1, (64 << 20) // max(1, need // max(1, n)))  # ~64 MB a read
            parts, noise = [], []
            for lo in range(0, n, chunk):
                block = self.survey.read_range(lo, min(n, lo + chunk))
                if self.conditions.noise is None:
                    noise.append(border_noise_sigma(block).astype(np.float32))
                parts.append(np.nan_to_num(block, nan=0.0))
            self.cached = np.concatenate(parts)
            self._cached_noise = np.concatenate(noise) if noise else None

    def __len__(self) -> int:
        return len(self.survey)

    def __getitem__(self, rows: list[int]) -> dict[str, torch.Tensor]:
        rows_arr = np.sort(np.asarray(rows, dtype=np.int64))
        c = self.conditions
        if self.cached is not None:
            images = self.cached[rows_arr]
            noise = c.noise[rows_arr] if self._cached_noise is None else self._cached_noise[rows_arr]
        else:
            images = self._read(rows_arr)
            noise = c.noise[rows_arr] if c.noise is not None else border_noise_sigma(images).astype(np.float32)
            images = np.nan_to_num(images, nan=0.0)
        return {
            "rows": torch.from_numpy(rows_arr),
            "images": torch.from_numpy(images),
            "ebv": torch.from_numpy(c.ebv[rows_arr]),
            "fwhm": torch.from_numpy(c.fwhm[rows_arr]),
            "noise": torch.from_numpy(noise),
        }

    def _read(self, rows: np.ndarray) -> np.ndarray:
        """One row at a time: h5py's fancy indexing (`images[[i, j, ...]]`, what NativeSurvey.images
        does for a list of rows) builds a point-by-point selection that is 1.4x slower than row reads
        on 64 px stamps and 5.7x slower on 160 px ones (bench notes in docs/training.md)."""
        out = np.empty((len(rows), *self.survey.image_shape), dtype=np.float32)
        for i in range(len(rows)):
            out[i] = self.survey.images(rows[i : i + 1])[0]
        return out


class EpochBatchSampler(Sampler[list[int]]):
    """Seeded shuffle per epoch, split across ranks, cut into full batches; `skip` batches are
    dropped from the front so a resumed run sees exactly the batches it had not seen."""

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1,
                 skip: int = 0) -> None:
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, epoch
        self.rank, self.world, self.skip = rank, world, skip

    def batches(self) -> list[list[int]]:
        g = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch]))
        order = g.permutation(self.n)
        per_rank = (self.n // self.world) // self.batch_size * self.batch_size
        mine = order[self.rank * per_rank : (self.rank + 1) * per_rank]
        return [mine[i : i + self.batch_size].tolist() for i in range(0, per_rank, self.batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches()[self.skip :])

    def __len__(self) -> int:
        return max(0, len(self.batches()) - self.skip)


def make_loader(dataset: SurveyBatches, sampler: EpochBatchSampler, workers: int, pin_memory: bool) -> DataLoader:
    """Batches of whole rows, `workers` processes reading HDF5 ahead (0 = in this process).

    The loader gets its own generator, seeded from (seed, epoch, rank): left to itself it draws
    its workers' base seed from torch's global RNG every epoch, so a resumed run, which creates
    one loader fewer, would leave the global RNG elsewhere than an uninterrupted one.
    """
    seed = np.random.SeedSequence([sampler.seed, sampler.epoch, sampler.rank, 7]).generate_state(1)[0]
    return DataLoader(
        dataset, sampler=sampler, batch_size=None, num_workers=workers, pin_memory=pin_memory,
        prefetch_factor=4 if workers > 0 else None, persistent_workers=False,
        generator=torch.Generator().manual_seed(int(seed)),
    )
