"""The teacher-logit cache: the teacher runs once over the training texts, in eval mode and batched by length,
and its logits are stored under the cache, keyed by the teacher's weights and the texts. Every later epoch,
run and sweep reads them back instead of running the teacher again."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from distill_cli import modeling
from distill_cli.config import Config
from distill_cli.data.sources import sha, sha_file
from distill_cli.errors import DistillError
from distill_cli.files import atomic_file, cache_lock
from distill_cli.inference import pooled_output
from distill_cli.precision import autocast, device, resolve
from distill_cli.training.trainer import MODEL_INPUTS
from distill_cli.ui import Bar, warn


def model_fingerprint(ref: modeling.ModelRef, model_config) -> str:
    """Identifies a teacher's weights: file contents for a local model, the commit for a Hub model."""
    if ref.is_local:
        root = Path(ref.location)
        weights = ("*.safetensors", "pytorch_model*.bin", "*.onnx")  # an exported folder teaches too
        files = [f for pattern in weights for f in sorted(root.glob(pattern))]
        files += [root / n for n in ("config.json", "tokenizer.json", "vocab.txt", "tokenizer_config.json")]
        return hashlib.sha256("".join(f.name + sha_file(f) for f in files if f.is_file()).encode()).hexdigest()
    return f"{ref.location}@{getattr(model_config, '_commit_hash', None)}"


def world() -> tuple[int, int]:
    """(rank, number of processes) of the process group the Trainer started; (0, 1) without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@torch.no_grad()  # not inference_mode: the probe's head is fitted on these by autograd
def batched_outputs(
    model, tokenizer, texts: list[str], max_length: int, output, width: int, description: str, batch_size: int = 64,
    precision: str = "fp32",
) -> torch.Tensor:  # fmt: skip
    """``output(model, batch)`` (one row of ``width`` per text) for ``texts`` in their order, batched by length
    (little padding), in eval mode, under autocast to a (resolved) half ``precision``; float32 rows.

    Under ``torchrun`` every process computes a share of the rows (``shard``) and the shares are gathered,
    so that all processes have every row and none waits idle; every process must call it."""
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    rank, size = world()
    rows = shard(length_order(enc), rank, size)
    with Bar(progress_title(description), len(rows)) as bar:
        part = compute_rows(model, tokenizer, enc, rows, output, width, precision, bar, batch_size)
    return gather_rows(part, rows, len(texts), size)


def length_order(enc) -> np.ndarray:
    """The rows by token count: batches of similar lengths need little padding."""
    return np.argsort([len(ids) for ids in enc["input_ids"]], kind="stable")


def progress_title(description: str) -> str:
    rank, size = world()
    return description if size == 1 else f"{description} (process {rank + 1} of {size})"


@torch.no_grad()
def compute_rows(model, tokenizer, enc, rows, output, width: int, precision: str, bar, batch_size: int = 64):
    """``output`` for the tokenized rows ``rows`` of ``enc``, in that order (float32, on the CPU)."""
    model.eval()
    part = torch.empty(len(rows), width)
    keys = [k for k in MODEL_INPUTS if k in enc]
    where = model.device if hasattr(model, "device") else next(model.parameters()).device
    with autocast(precision, where):
        for start in range(0, len(rows), batch_size):
            idx = rows[start : start + batch_size]
            batch = tokenizer.pad({k: [enc[k][i] for i in idx] for k in keys}, return_tensors="pt")
            part[start : start + len(idx)] = output(model, batch.to(where)).float().cpu()
            bar.advance(len(idx))
    return part


def shard(order: np.ndarray, rank: int, size: int) -> np.ndarray:
    """The rows process ``rank`` of ``size`` computes: every ``size``-th of the length order, so each share
    holds texts of every length (equal work), by a rule every process computes alike."""
    return order[rank::size]


def gather_rows(part: torch.Tensor, rows: np.ndarray, total: int, size: int) -> torch.Tensor:
    """The ``total`` rows in their order, from each process's ``part`` (its ``rows``)."""
    out = torch.empty(total, part.shape[1])
    gather_into(out, part, rows, size, longest=-(-total // size))
    return out


def gather_into(out: torch.Tensor, part: torch.Tensor, rows: np.ndarray, size: int, longest: int) -> None:
    """Every process's ``part`` (its ``rows``, at most ``longest``) written into ``out`` at those rows. The
    parts are sent as tensors, padded to ``longest`` (``all_gather`` wants equal shapes): nothing is
    pickled between processes."""
    if size == 1:
        out[torch.as_tensor(rows, dtype=torch.long)] = part
        return
    import torch.distributed as dist

    padded = torch.zeros(longest, out.shape[1])
    padded[: len(rows)] = part
    index = torch.full((longest,), -1, dtype=torch.long)
    index[: len(rows)] = torch.as_tensor(rows, dtype=torch.long)
    device = gather_device()
    parts = [torch.empty_like(padded, device=device) for _ in range(size)]
    indices = [torch.empty_like(index, device=device) for _ in range(size)]
    dist.all_gather(parts, padded.to(device))
    dist.all_gather(indices, index.to(device))
    for values, where in zip(parts, indices):
        keep = where >= 0
        out[where[keep].cpu()] = values[keep].cpu()


def compute_logits(
    model, tokenizer, texts: list[str], max_length: int, description: str = "teacher logits", precision: str = "fp32"
):
    """Logits of ``model`` for ``texts`` in their order."""
    width = model.config.num_labels
    logits = lambda m, b: m(**b).logits  # noqa: E731
    return batched_outputs(model, tokenizer, texts, max_length, logits, width, description, precision=precision)


PIECE_ROWS = 8192  # rows at most per saved piece of an unfinished teacher pass


def teacher_logits(
    cfg: Config, ref: modeling.ModelRef, model_config, texts: Sequence[str], what: str = "logits",
    fingerprint: str | None = None,
) -> tuple[torch.Tensor, bool]:  # fmt: skip
    """The teacher's logits over ``texts`` (``what="features"``: its pooled features, what its head reads),
    from the cache when the same teacher saw the same texts. A cache entry is trusted only when its shape,
    checksum and values check out; a damaged one is computed again. The pass is saved piece by piece
    (``pieces``): an interrupted one resumes where it stopped. ``fingerprint``: the teacher's
    ``model_fingerprint`` where the caller has it already (its weights are not read again)."""
    half = resolve(cfg.precision)
    parts = [fingerprint or model_fingerprint(ref, model_config), cfg.max_length, texts_digest(texts)]
    parts += [half] if half != "fp32" else []  # fp32 logits keys as they always were
    parts += [what] if what != "logits" else []
    key = sha(json.dumps(parts))[:24]
    path = cfg.cache_root() / "teacher-logits" / f"{key}.safetensors"
    rank, _ = world()
    # Processes after one entry at once (search workers, two runs) take turns: the later reads what the first
    # wrote, and no process removes the pieces another is still writing. Under torchrun only process 0 waits
    # (the others meet it in the collectives), so the ranks of one run never wait on each other.
    with cache_lock(cfg.cache_root(), f"teacher-{key}") if rank == 0 else nullcontext():
        return cached_or_computed(cfg, ref, model_config, texts, what, path, half)


def cached_or_computed(cfg: Config, ref, model_config, texts: Sequence[str], what: str, path: Path, half: str):
    """The entry at ``path`` when it checks out, else the teacher's pass over ``texts``, saved there."""
    from safetensors.torch import save_file

    width = model_config.num_labels if what == "logits" else None  # features: the head's input, once loaded
    cached = read_checked(path, (len(texts), width), what) if path.is_file() else None
    if everywhere(cached is not None):  # under torchrun, every process must take the same way
        return cached, True
    rank, _ = world()
    if path.is_file() and rank == 0:
        warn(f"the teacher-{what[:-1]} cache entry {path.name} is damaged; computing it again")
    tokenizer = modeling.load_tokenizer(ref, cfg)
    model = modeling.load_for_inference(ref, cfg).to(device())
    folder = path.with_suffix(".pieces")
    values = labelled_in_pieces(model, tokenizer, texts, cfg.max_length, half, folder, what).contiguous()
    if not all_finite(values):
        raise DistillError(f"teacher '{ref.spec}' gives non-finite {what} (NaN or infinity): it cannot teach")
    if rank == 0:  # every process has every row; one writes the entry, whole or not at all
        metadata = {"teacher": ref.spec, "rows": str(len(texts)), "sha256": tensor_digest(values)}
        with atomic_file(path) as tmp:
            save_file({what: values}, str(tmp), metadata=metadata)
        shutil.rmtree(folder, ignore_errors=True)  # its pieces, ours: the entry holds them all now
    return values, False


def labelled_in_pieces(
    model, tokenizer, texts: Sequence[str], max_length: int, precision: str, folder: Path, what: str = "logits"
):
    """The teacher's logits (or pooled ``features``), a piece of consecutive rows (at most ``PIECE_ROWS``) at
    a time: each piece is read (``texts[start:stop]``), tokenized, labelled in length order (little padding)
    and saved in ``folder`` as soon as it is done (its rows and values, checksummed). Pieces already there
    and whole are read, not computed. Memory holds the values and one piece's texts, never all the texts.

    Under ``torchrun`` the pieces go in rounds: in round r process i labels piece r*N + i, and the round's
    pieces are gathered before the next, so every process is busy and has every row at the end."""
    logits = (lambda m, b: m(**b).logits), model.config.num_labels
    rank, size = world()
    total = len(texts)
    count = max(size, -(-total // PIECE_ROWS))  # at least a piece per process: none waits idle
    bounds = [k * total // count for k in range(count + 1)]
    mine = range(rank, count, size)
    title = progress_title(f"teacher {what}")
    with pooled_output(model) if what == "features" else nullcontext(logits) as (output, width):
        out = torch.empty(total, width)
        with Bar(title, sum(bounds[k + 1] - bounds[k] for k in mine)) as bar:
            for first in range(0, count, size):  # one round
                k = first + rank
                rows, saved = np.empty(0, dtype=np.int64), torch.empty(0, width)
                if k < count and bounds[k] < bounds[k + 1]:  # fewer rows than processes leave some empty
                    rows = np.arange(bounds[k], bounds[k + 1])
                    piece = folder / f"piece-{k:06d}.safetensors"
                    saved = read_piece(piece, rows, width)
                    if saved is None:
                        enc = tokenizer(list(texts[bounds[k] : bounds[k + 1]]), truncation=True, max_length=max_length)
                        order = length_order(enc)
                        saved = torch.empty(len(rows), width)
                        saved[torch.as_tensor(order)] = compute_rows(
                            model, tokenizer, enc, order, output, width, precision, bar
                        )
                        write_piece(piece, rows, saved)
                    else:
                        bar.advance(len(rows))
                gather_into(out, saved, rows, size, longest=-(-total // count))
    return out


def write_piece(path: Path, rows: np.ndarray, logits: torch.Tensor) -> None:
    from safetensors.torch import save_file

    index = torch.as_tensor(np.ascontiguousarray(rows), dtype=torch.long)
    metadata = {"sha256": tensor_digest(logits), "rows_sha256": tensor_digest(index)}
    with atomic_file(path) as tmp:
        save_file({"rows": index, "logits": logits.contiguous()}, str(tmp), metadata=metadata)


def read_piece(path: Path, rows: np.ndarray, width: int) -> torch.Tensor | None:
    """A saved piece's logits when the file is whole and holds exactly these rows; else None."""
    from safetensors import safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            index, logits = f.get_tensor("rows"), f.get_tensor("logits")
    except Exception:  # noqa: BLE001 - a truncated or garbled file raises several kinds of error
        return None
    whole = meta.get("sha256") == tensor_digest(logits) and meta.get("rows_sha256") == tensor_digest(index)
    fits = tuple(logits.shape) == (len(rows), width) and np.array_equal(index.numpy(), rows)
    return logits if whole and fits and bool(torch.isfinite(logits).all()) else None


def texts_digest(texts: Sequence[str], chunk: int = 10_000) -> str:
    """``sha("\\n".join(texts))`` (the key's part every cache entry has had), without the joined copy: the
    texts are read ``chunk`` at a time (``texts`` may be a dataset's column on disk)."""
    h = hashlib.sha256()
    for start in range(0, len(texts), chunk):
        for i, text in enumerate(texts[start : start + chunk], start):
            h.update((b"\n" if i else b"") + text.encode())
    return h.hexdigest()


def everywhere(flag: bool) -> bool:
    """``flag`` is true in every process (one process: ``flag``)."""
    _, size = world()
    if size == 1:
        return flag
    import torch.distributed as dist

    value = torch.tensor([int(flag)], device=gather_device())
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def gather_device():
    """Where collectives' tensors live: the process's GPU under NCCL, else the CPU (gloo)."""
    import torch.distributed as dist

    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_finite(tensor: torch.Tensor, rows: int = 65_536) -> bool:
    """No NaN or infinity, checked a slice at a time (no mask as large as a million rows of logits)."""
    return all(bool(torch.isfinite(tensor[i : i + rows]).all()) for i in range(0, len(tensor), rows))


def tensor_digest(tensor: torch.Tensor) -> str:
    """The SHA-256 of the tensor's bytes, read in place (a million rows of logits are not copied)."""
    return hashlib.sha256(np.ascontiguousarray(tensor.numpy()).data).hexdigest()


def read_checked(path: Path, shape: tuple[int, int | None], name: str = "logits") -> torch.Tensor | None:
    """The cached tensor if the file reads, has the expected shape (a width of None: any), matches its
    checksum and holds only finite values; else None."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            digest = (f.metadata() or {}).get("sha256")
            values = f.get_tensor(name)
    except Exception:  # noqa: BLE001 - a truncated or garbled file raises several kinds of error
        return None
    rows, width = shape
    fits = values.dim() == 2 and values.shape[0] == rows and width in (None, values.shape[1])
    ok = fits and digest == tensor_digest(values) and all_finite(values)
    return values if ok else None
