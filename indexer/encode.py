"""Encode a whole survey into embeddings, in shards that survive being killed.

    skysift encode --survey data/demo --encoder runs/demo/encoder --job demo
    torchrun --nproc_per_node=8 -m skysift.cli encode --survey ... --job demo   # shards split across ranks

Each shard of rows is written as `emb-00000.npy` (float16, L2-normalised) with a `.done` marker
written after it; a re-run skips shards whose marker names the job's current plan, so a crash loses
at most the shards in flight. Shard k belongs to rank k mod world_size.

`plan.json` fingerprints what the embeddings depend on: the survey (per shard file its name, size,
mtime_ns and full sha256; object count and ids), the encoder (weights sha256, preprocessing after
`for_survey`) and the settings that change them (shard size, resolved precision; not the batch
size, device or workers). Its `key` hashes all of that but the mtimes. A re-run whose fingerprints
differ (pixels re-ingested under the same ids, other weights, ...) says in one line what changed,
writes the new plan, deletes the stale shards and encodes again in the same job folder: a marker
counts only when it names the current key, so a kill at any point of that never revives a stale
shard. Hashing reads every survey byte once (sha256 ~1.5 GB/s a core, 0.07 s for a 100 MB shard;
files are hashed in parallel); a file whose name, size and mtime_ns are as recorded keeps its
recorded digest, so resuming costs a stat per file. A digest of the first and last MiB was
measured not to notice a stamp changed in the middle of a 100 MB shard (same size, same ends).

Reading overlaps with the model: a background reader (one thread, or `workers` processes through a
DataLoader) reads contiguous, already-cropped row ranges (`NativeSurvey.read_range`) and
preprocesses them while the model runs on the previous batch (bench/bench_encode.py measures the
end-to-end rate against bare inference). On CUDA the reader only crops into pinned memory; the
copy is non-blocking, the arcsinh stretch runs on the GPU and the model under bf16 autocast.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from encoder.card import ModelCard
from encoder.preprocess import preprocess
from encoder.weights import load_encoder
from survey.native import NativeSurvey

from .artifacts import crash_point
from .errors import ArtifactMismatch

_log = logging.getLogger(__name__)


def shard_paths(job: Path, k: int) -> tuple[Path, Path]:
    return job / f"emb-{k:05d}.npy", job / f"emb-{k:05d}.done"


def n_shards(n: int, shard_size: int) -> int:
    return (n + shard_size - 1) // shard_size


def shards_of_rank(n: int, shard_size: int, rank: int, world: int) -> list[int]:
    """Shard numbers this rank owns: k with k mod world == rank."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside [0, {world})")
    return list(range(rank, n_shards(n, shard_size), world))


# ---------------------------------------------------------------- reading


class RowReader(torch.utils.data.Dataset):
    """Item i = (i, pixels (n, C, S, S) float32) for the i-th (start, stop) row range.

    Reads through `NativeSurvey.read_range` (the row-range read training and the quality pass use):
    contiguous hyperslabs of the native `images` dataset (one HDF5 chunk per object, so a range is
    one sequential pass of LZF decompression), cropped to the model's input at read time; a range
    may span two survey files. With `stretch`, the arcsinh preprocessing is applied here too (CPU
    runs), otherwise the caller does it on its device. The survey opens its HDF5 handles per
    process, so DataLoader workers do not share HDF5 state with the parent.
    """

    def __init__(self, survey: NativeSurvey, ranges: list[tuple[int, int]], card: ModelCard, *,
                 stretch: bool, pin: bool = False) -> None:
        self.survey, self.ranges, self.card, self.stretch, self.pin = survey, ranges, card, stretch, pin
        h, w = survey.image_shape[-2:]
        self.size = card.preprocess.input_size_px
        if h < self.size or w < self.size:
            # the same refusal preprocess() would give, before any work is done
            preprocess(np.zeros((1, len(card.bands), h, w), np.float32), card.preprocess)

    def __len__(self) -> int:
        return len(self.ranges)

    def read(self, start: int, stop: int) -> np.ndarray:
        """float32 (stop - start, C, S, S) centre crops of rows [start, stop)."""
        return self.survey.read_range(start, stop, crop_px=self.size)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor]:
        x = torch.from_numpy(self.read(*self.ranges[i]))
        if self.stretch:
            x = preprocess(x, self.card.preprocess)
        if self.pin:
            x = x.pin_memory()
        return i, x


_END = object()


def _thread_prefetch(reader: RowReader, depth: int) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield reader[0], reader[1], ... while a daemon thread reads up to `depth` items ahead.

    h5py and torch release the GIL in their C code, so the read and the stretch of batch i+1
    run while the model works on batch i. An exception in the thread is re-raised here.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def work() -> None:
        try:
            for i in range(len(reader)):
                item = reader[i]
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as e:  # handed to the consumer, which re-raises it
            q.put(e)
            return
        q.put(_END)

    thread = threading.Thread(target=work, name="skysift-encode-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=10)


def _batches(reader: RowReader, workers: int, prefetch: int) -> Generator[tuple[int, torch.Tensor], None, None]:
    if workers <= 0:
        yield from _thread_prefetch(reader, prefetch)
        return
    pin, reader.pin = reader.pin, False  # a forked worker must not touch CUDA; the loader pins instead
    loader = torch.utils.data.DataLoader(reader, batch_size=None, shuffle=False, num_workers=workers,
                                         prefetch_factor=max(1, prefetch), pin_memory=pin,
                                         multiprocessing_context="fork" if os.name == "posix" else None)
    yield from loader  # in order: DataLoader returns items in index order whatever the worker


# ---------------------------------------------------------------- encoding


def catalog_digest(object_ids: np.ndarray) -> str:
    """sha256 of the object ids in row order: a resumed job must see the same objects."""
    h = hashlib.sha256()
    block = 1 << 16
    for start in range(0, len(object_ids), block):
        h.update("\n".join(map(str, object_ids[start : start + block])).encode())
        h.update(b"\n")
    return h.hexdigest()


def encode_survey(survey_dir: Path, encoder_dir: Path, job: Path, *, shard_size: int = 4096, batch_size: int = 256,
                  device: str = "cpu", rank: int = 0, world: int = 1, workers: int = 0, prefetch: int = 2,
                  precision: str = "auto", on_rows: Callable[[int], None] | None = None,
                  log: Callable[[str], None] | None = None) -> list[int]:
    """Encode the shards of this rank that are not done yet; returns the shard numbers encoded.

    precision: "auto" (bf16 autocast on CUDA, fp32 on CPU), "fp32" or "bf16".
    workers: reader processes (0: one background thread, enough on CPU where the model dominates).
    log: where the line saying why finished shards are encoded again goes (default: a logging warning).
    """
    job.mkdir(parents=True, exist_ok=True)
    survey = NativeSurvey(survey_dir)
    dev = torch.device(device)
    encoder, card = load_encoder(encoder_dir, dev)
    card.check_bands(survey.bands, len(survey.bands))
    card = card.for_survey(survey.units)  # normalisation in the units this survey recorded
    if abs(survey.pixel_scale_arcsec - card.preprocess.pixel_scale_arcsec) > 1e-3 * card.preprocess.pixel_scale_arcsec:
        raise ArtifactMismatch(f"survey pixel scale {survey.pixel_scale_arcsec}\"/px differs from the encoder's "
                               f"{card.preprocess.pixel_scale_arcsec}\"/px")
    n = len(survey)
    cuda = dev.type == "cuda"
    bf16 = precision == "bf16" or (precision == "auto" and cuda)
    key = _settle_plan(job, survey, card, shard_size, "bf16" if bf16 else "fp32", rank, world, log or _log.warning)

    todo = []
    for k in shards_of_rank(n, shard_size, rank, world):
        start, stop = k * shard_size, min((k + 1) * shard_size, n)
        if _done(job, k, key):
            if on_rows:
                on_rows(stop - start)
        else:
            _remove_shard(job, k)  # left by another plan or half done: never taken for this plan's
            todo.append(k)
    if not todo:
        survey.close()
        return []

    ranges, owner = [], []  # batches never straddle an embedding shard
    for k in todo:
        start, stop = k * shard_size, min((k + 1) * shard_size, n)
        for b0 in range(start, stop, batch_size):
            ranges.append((b0, min(b0 + batch_size, stop)))
            owner.append(k)
    if cuda:
        torch.backends.cudnn.benchmark = True
        encoder = encoder.to(memory_format=torch.channels_last)
    reader = RowReader(survey, ranges, card, stretch=not cuda, pin=cuda)

    done: list[int] = []
    parts: list[np.ndarray] = []
    batches = _batches(reader, workers, prefetch)
    try:
        with torch.inference_mode():
            for i, x in batches:
                x = x.to(dev, non_blocking=True)
                if cuda:
                    x = preprocess(x, card.preprocess).contiguous(memory_format=torch.channels_last)
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                    z = encoder.embed(x)  # (n, D) float32, unit norm
                parts.append(z.to(torch.float16).cpu().numpy())
                if on_rows:
                    on_rows(len(z))
                k = owner[i]
                if i + 1 == len(ranges) or owner[i + 1] != k:
                    _write_shard(job, k, np.concatenate(parts), k * shard_size, key)
                    parts = []
                    done.append(k)
    finally:
        batches.close()  # stops the reader thread / workers even when the loop raised
        survey.close()
    return done


def _write_shard(job: Path, k: int, emb: np.ndarray, start: int, key: str) -> None:
    """emb-k.npy via a .partial file (fsync, rename), then the .done marker (naming the plan) the same way."""
    npy, marker = shard_paths(job, k)
    buf = io.BytesIO()
    np.save(buf, emb)
    data = buf.getbuffer()
    tmp = npy.with_name(npy.name + ".partial")
    with open(tmp, "wb") as f:
        half = len(data) // 2
        f.write(data[:half])
        f.flush()
        crash_point("encode.mid_npy")  # a kill here leaves half an .npy under its .partial name
        f.write(data[half:])
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, npy)
    crash_point("encode.before_marker")  # the .npy is complete but not marked: it is redone
    tmp = marker.with_name(marker.name + ".partial")
    tmp.write_text(json.dumps({"rows": [start, start + len(emb)], "plan": key}))
    os.replace(tmp, marker)
    crash_point("encode.after_shard")


# ---------------------------------------------------------------- the plan and its fingerprints

PLAN_FORMAT = 2
_RACY_NS = 2_000_000_000  # a file modified this close to the fingerprint could change again unseen (2 s: FAT)


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def survey_fingerprint(paths: list[Path], recorded: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], int]:
    """([{name, size, mtime_ns, sha256}] of the survey files in order, how many were hashed).

    A file whose name, size and mtime_ns are those `recorded` by an earlier plan, and whose mtime was
    already 2 s old when that plan was made, keeps the recorded digest (so its rewrite in the same
    clock tick cannot go unseen); every other file is read and hashed in full, several at once
    (hashlib releases the GIL)."""
    trusted: dict[str, dict[str, Any]] = {}
    if recorded and recorded.get("format") == PLAN_FORMAT:
        made = int(recorded.get("fingerprinted_ns", 0))
        trusted = {f["name"]: f for f in recorded.get("survey", []) if f["mtime_ns"] < made - _RACY_NS}
    rows, todo = [], []
    for p in paths:
        st = Path(p).stat()
        row: dict[str, Any] = {"name": Path(p).name, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": ""}
        old = trusted.get(row["name"])
        if old is not None and (old["size"], old["mtime_ns"]) == (row["size"], row["mtime_ns"]):
            row["sha256"] = old["sha256"]
        else:
            todo.append((row, Path(p)))
        rows.append(row)
    if todo:
        with ThreadPoolExecutor(max_workers=min(len(todo), os.cpu_count() or 1, 8)) as pool:
            for (row, _), digest in zip(todo, pool.map(file_sha256, [p for _, p in todo]), strict=True):
                row["sha256"] = digest
    return rows, len(todo)


def plan_key(plan: dict[str, Any]) -> str:
    """sha256 of what the embeddings depend on: the plan without mtimes, its own time and key."""
    ident = {k: v for k, v in plan.items() if k not in ("fingerprinted_ns", "key")}
    ident["survey"] = [{k: v for k, v in f.items() if k != "mtime_ns"} for f in plan.get("survey", [])]
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


def make_plan(survey: NativeSurvey, card: ModelCard, shard_size: int, precision: str,
              recorded: dict[str, Any] | None = None) -> tuple[dict[str, Any], int]:
    """The plan of encoding `survey` with `card` (its preprocessing already set for the survey), and
    how many survey files had to be hashed."""
    made = time.time_ns()  # before the files are looked at: a later change is a later mtime
    files, hashed = survey_fingerprint(survey.paths, recorded)
    pre = card.preprocess.model_dump(mode="json")
    # Fields added later leave the hash as it was while they are off, so older jobs keep their key;
    # `align` is the readout's (recorded below), not a preprocessing choice of its own.
    del pre["align"]
    if pre["smooth_px"] == 0:
        del pre["smooth_px"]
    preprocess_json = json.dumps(pre, sort_keys=True)
    plan = {"format": PLAN_FORMAT, "n_objects": len(survey), "shard_size": shard_size,
            "weights_sha256": card.weights_sha256,
            "preprocess_sha256": hashlib.sha256(preprocess_json.encode()).hexdigest(),
            "precision": precision, "catalog_sha256": catalog_digest(survey.catalog["object_id"]),
            "survey": files, "fingerprinted_ns": made}
    if card.readout != "plain":  # absent for "plain", so jobs planned before readouts keep their key
        plan["readout"] = card.readout
    plan["key"] = plan_key(plan)
    return plan, hashed


def _few(names: list[str], most: int = 3) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def plan_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two plans, in words (empty: the same embeddings)."""
    if old.get("format") != new.get("format") or "key" not in old:
        return ["this job's plan.json predates the fingerprints of its survey and settings"]
    out = []
    if old.get("n_objects") != new["n_objects"]:
        out.append(f"the survey's objects changed ({old.get('n_objects')} -> {new['n_objects']})")
    elif old.get("catalog_sha256") != new["catalog_sha256"]:
        out.append("the survey's object ids changed")
    was = {f["name"]: f for f in old.get("survey", [])}
    now = {f["name"]: f for f in new["survey"]}
    changed = [name for name, f in now.items()
               if name in was and (was[name]["size"], was[name]["sha256"]) != (f["size"], f["sha256"])]
    added = [name for name in now if name not in was]
    gone = [name for name in was if name not in now]
    if changed or added or gone:
        what = "pixels" if not (added or gone or out) else "files"
        names = changed + [f"{a} new" for a in added] + [f"{g} gone" for g in gone]
        out.append(f"survey {what} changed since this job's embeddings were made ({_few(names)})")
    if old.get("weights_sha256") != new["weights_sha256"]:
        out.append("the encoder's weights changed")
    if old.get("preprocess_sha256") != new["preprocess_sha256"]:
        out.append("the encoder's preprocessing changed (its model card, or the units the survey records)")
    if old.get("readout", "plain") != new.get("readout", "plain"):
        out.append(f"the encoder's readout changed ({old.get('readout', 'plain')} -> {new.get('readout', 'plain')})")
    for name, what in (("shard_size", "shard size"), ("precision", "precision")):
        if old.get(name) != new[name]:
            out.append(f"{what} changed ({old.get(name)} -> {new[name]})")
    if not out and plan_key(old) != new["key"]:
        out.append("this job's plan.json changed")
    return out


def _write_plan(job: Path, plan: dict[str, Any]) -> None:
    path = job / "plan.json"
    # every rank of a torchrun job settles the plan at start-up, often at the same moment and on a
    # shared filesystem: a temporary name of its own, or one rank renames away the file another
    # is about to rename (FileNotFoundError; tests/indexer/test_encode_ranks.py)
    tmp = path.with_name(f"plan.json.{uuid.uuid4().hex}.partial")
    tmp.write_text(json.dumps(plan))
    os.replace(tmp, path)


def _settle_plan(job: Path, survey: NativeSurvey, card: ModelCard, shard_size: int, precision: str,
                 rank: int, world: int, log: Callable[[str], None]) -> str:
    """Make plan.json describe this encoding and return its key (which a `.done` marker must name).

    When the job's plan differs (other pixels, objects, encoder or settings): say what changed in one
    line, write the new plan, then delete this rank's shards of the old one. The order is crash
    safe: before the new plan is written a re-run finds the same difference; after it, the old
    markers name another key and are not done."""
    path = job / "plan.json"
    old = json.loads(path.read_text()) if path.exists() else None
    new, hashed = make_plan(survey, card, shard_size, precision, old)
    if old is None:
        _write_plan(job, new)
        return new["key"]
    changes = plan_changes(old, new)
    if not changes and old.get("key") == new["key"]:
        if hashed:  # files touched but unchanged, or too new to trust their mtime: record the new stats
            _write_plan(job, new)
        return new["key"]
    why = "; ".join(changes or ["this job's plan.json changed"])
    log(f"{why}; re-encoding all {new['n_objects']} objects in {job}")
    _write_plan(job, new)
    crash_point("encode.new_plan")  # a kill here leaves stale shards whose markers name the old key
    k_total = n_shards(new["n_objects"], shard_size)
    for f in sorted(job.glob("emb-*")):
        k = f.name[4:9]
        if k.isdigit() and (int(k) % world == rank or (rank == 0 and int(k) >= k_total)):
            f.unlink(missing_ok=True)
    return new["key"]


def _done(job: Path, k: int, key: str | None) -> bool:
    """Shard k is encoded under the plan with this key (any marker, for a plan older than keys)."""
    marker = shard_paths(job, k)[1]
    if key is None:
        return marker.exists()
    try:
        return json.loads(marker.read_text()).get("plan") == key
    except (FileNotFoundError, ValueError):
        return False


def _remove_shard(job: Path, k: int) -> None:
    npy, marker = shard_paths(job, k)
    marker.unlink(missing_ok=True)  # the marker first: an .npy without one is never used
    npy.unlink(missing_ok=True)


def read_plan(job: Path) -> dict[str, Any]:
    path = Path(job) / "plan.json"
    if not path.exists():
        raise ArtifactMismatch(f"{job}: no plan.json; run `skysift encode` for this job first")
    return json.loads(path.read_text())


def gather_embeddings(job: Path) -> np.ndarray:
    """(N, D) float16 from all shards, checking every shard is present, complete and in place."""
    plan = read_plan(job)
    n, size = plan["n_objects"], plan["shard_size"]
    k_total = n_shards(n, size)
    missing = [k for k in range(k_total) if not _done(job, k, plan.get("key"))]
    if missing:
        raise ArtifactMismatch(f"{job}: {len(missing)} of {k_total} shards not encoded yet (e.g. {missing[:5]})")
    parts = []
    for k in range(k_total):
        npy = shard_paths(job, k)[0]
        part = np.load(npy)
        want = min((k + 1) * size, n) - k * size
        if part.ndim != 2 or len(part) != want:
            raise ArtifactMismatch(f"{npy}: {part.shape} rows but shard {k} covers {want} objects")
        parts.append(part)
    emb = np.concatenate(parts)
    if len(emb) != n:
        raise ArtifactMismatch(f"{job}: {len(emb)} embeddings for {n} objects")
    return emb


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
