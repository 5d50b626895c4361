"""The teacher-logit cache: the teacher runs once over the training texts, in eval mode and batched by length,
and its logits are stored under the cache, keyed by the teacher's weights and the texts. Every later epoch,
run and sweep reads them back instead of running the teacher again."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from distill_cli import modeling
from distill_cli.config import Config
from distill_cli.data.sources import sha, sha_file
from distill_cli.errors import DistillError
from distill_cli.files import atomic_file
from distill_cli.precision import autocast, device, resolve
from distill_cli.training.trainer import MODEL_INPUTS
from distill_cli.ui import Bar, warn


def model_fingerprint(ref: modeling.ModelRef, model_config) -> str:
    """Identifies a teacher's weights: file contents for a local model, the commit for a Hub model."""
    if ref.is_local:
        root = Path(ref.location)
        files = sorted(root.glob("*.safetensors")) + sorted(root.glob("pytorch_model*.bin"))
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
    where = next(model.parameters()).device
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
    """The ``total`` rows in their order, from each process's ``part`` (its ``rows``). The shares are sent as
    tensors, padded to one length (``all_gather`` wants equal shapes): nothing is pickled between processes."""
    out = torch.empty(total, part.shape[1])
    if size == 1:
        out[torch.as_tensor(rows, dtype=torch.long)] = part
        return out
    import torch.distributed as dist

    longest = -(-total // size)
    padded = torch.zeros(longest, part.shape[1])
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
    return out


def compute_logits(
    model, tokenizer, texts: list[str], max_length: int, description: str = "teacher logits", precision: str = "fp32"
):
    """Logits of ``model`` for ``texts`` in their order."""
    width = model.config.num_labels
    logits = lambda m, b: m(**b).logits  # noqa: E731
    return batched_outputs(model, tokenizer, texts, max_length, logits, width, description, precision=precision)


PIECE_ROWS = 8192  # rows at most per saved piece of an unfinished teacher pass


def teacher_logits(cfg: Config, ref: modeling.ModelRef, model_config, texts: list[str]) -> tuple[torch.Tensor, bool]:
    """The teacher's logits over ``texts``, from the cache when the same teacher saw the same texts. A cache
    entry is trusted only when its shape, checksum and values check out; a damaged one is computed again.
    The pass is saved piece by piece (``pieces``): an interrupted one resumes where it stopped."""
    from safetensors.torch import save_file

    half = resolve(cfg.precision)
    parts = [model_fingerprint(ref, model_config), cfg.max_length, texts_digest(texts)]
    key = sha(json.dumps(parts if half == "fp32" else [*parts, half]))[:24]  # fp32 keys as they always were
    path = cfg.cache_root() / "teacher-logits" / f"{key}.safetensors"
    shape = (len(texts), model_config.num_labels)
    cached = read_checked(path, shape) if path.is_file() else None
    if everywhere(cached is not None):  # under torchrun, every process must take the same way
        return cached, True
    rank, _ = world()
    if path.is_file() and rank == 0:
        warn(f"the teacher-logit cache entry {path.name} is damaged; computing it again")
    tokenizer = modeling.load_tokenizer(ref, cfg)
    model = modeling.load_for_inference(ref, cfg).to(device())
    folder = path.with_suffix(".pieces")
    logits = labelled_in_pieces(model, tokenizer, texts, cfg.max_length, half, folder).contiguous()
    if not torch.isfinite(logits).all():
        raise DistillError(f"teacher '{ref.spec}' gives non-finite logits (NaN or infinity): it cannot teach")
    if rank == 0:  # every process has every row; one writes the entry, whole or not at all
        metadata = {"teacher": ref.spec, "rows": str(shape[0]), "sha256": tensor_digest(logits)}
        with atomic_file(path) as tmp:
            save_file({"logits": logits}, str(tmp), metadata=metadata)
        shutil.rmtree(folder, ignore_errors=True)  # its pieces, ours: the entry holds them all now
    return logits, False


def labelled_in_pieces(model, tokenizer, texts: list[str], max_length: int, precision: str, folder: Path):
    """The teacher's logits, a piece of at most ``PIECE_ROWS`` rows at a time, each piece saved in ``folder``
    as soon as it is done (its rows and logits, checksummed); pieces already there and whole are read, not
    computed. Under ``torchrun`` piece k is process k mod N's, and the pieces are gathered."""
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    rank, size = world()
    order = length_order(enc)
    # Piece k holds every n-th row of the length order from the k-th: each piece (and so each process's
    # share) has short and long texts alike, and each is still in length order inside (little padding).
    count = max(size, -(-len(order) // PIECE_ROWS))
    pieces = [order[k::count] for k in range(count)][rank::size]
    width = model.config.num_labels
    mine = np.concatenate(pieces) if pieces else np.empty(0, dtype=np.int64)
    done = []
    with Bar(progress_title("teacher logits"), len(mine)) as bar:
        for k, rows in enumerate(pieces):
            piece = folder / f"piece-{(k * size + rank):06d}.safetensors"
            saved = read_piece(piece, rows, width)
            if saved is None:
                saved = compute_rows(model, tokenizer, enc, rows, lambda m, b: m(**b).logits, width, precision, bar)
                write_piece(piece, rows, saved)
            else:
                bar.advance(len(rows))
            done.append(saved)
    part = torch.cat(done) if done else torch.empty(0, width)
    return gather_rows(part, mine, len(texts), size)


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


def texts_digest(texts: list[str]) -> str:
    """``sha("\\n".join(texts))`` (the key's part every cache entry has had), without the joined copy."""
    h = hashlib.sha256()
    for i, text in enumerate(texts):
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


def tensor_digest(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.numpy().tobytes()).hexdigest()


def read_checked(path: Path, shape: tuple[int, int]) -> torch.Tensor | None:
    """The cached logits if the file reads, has the expected shape, matches its checksum and holds only
    finite values; else None."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            digest = (f.metadata() or {}).get("sha256")
            logits = f.get_tensor("logits")
    except Exception:  # noqa: BLE001 - a truncated or garbled file raises several kinds of error
        return None
    ok = tuple(logits.shape) == shape and digest == tensor_digest(logits) and bool(torch.isfinite(logits).all())
    return logits if ok else None
