"""Model weights on disk, checked before they are trusted: the files a folder of each kind needs are
there, and each safetensors file is whole (its header parses and its tensors end where the file ends).
Reading the headers costs a few milliseconds; a truncated file is named instead of failing deep inside a
library, and ``push`` never publishes a folder without its weights."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from distill_cli.errors import UsageError

ONNX_FILE = "model.onnx"
STATIC_HEAD = "head.safetensors"
SHARD_INDEX = "model.safetensors.index.json"
PICKLED = ("pytorch_model*.bin", "*.pt", "*.pth", "*.ckpt")
NESTED = ("2_Dense",)  # a mean-pooled run's sentence-transformers head


def safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a whole safetensors file, or None."""
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            if header_len > size - 8:
                return "its header runs past the end of the file"
            header = json.loads(f.read(header_len))
    except (struct.error, ValueError):
        return "its header does not read"
    if not isinstance(header, dict):
        return "its header does not read"
    ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__" and isinstance(t, dict)]
    expected = 8 + header_len + max(ends, default=0)
    if size < expected:
        return f"it is truncated ({size:,} of {expected:,} bytes)"
    return None


def required_files(folder: Path) -> list[str]:
    """The weight files a model folder of its kind cannot do without."""
    if (folder / ONNX_FILE).is_file():
        return [ONNX_FILE]
    if (folder / STATIC_HEAD).is_file():
        return ["model.safetensors", STATIC_HEAD]
    if (folder / SHARD_INDEX).is_file():
        try:
            shards = sorted(set(json.loads((folder / SHARD_INDEX).read_text())["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise UsageError(f"{folder / SHARD_INDEX} is damaged: it lists no shards") from None
        return shards
    return ["model.safetensors"]


def weights_problem(folder: Path) -> str | None:
    """What is wrong with the weights of a model folder, naming the file; None when they are whole. A folder
    with pickled weights only is left to the loader, which refuses them unless remote code is trusted."""
    if not any(folder.glob("*.safetensors")) and not (folder / ONNX_FILE).is_file():
        if any(p for pattern in PICKLED for p in folder.glob(pattern)):
            return None
    for name in required_files(folder):
        if not (folder / name).is_file():
            return f"{folder} lacks {name}: no safetensors or ONNX weights whole enough to load or publish"
    files = [p for d in (".", *NESTED) for p in sorted((folder / d).glob("*.safetensors"))]
    for path in files:
        problem = safetensors_problem(path)
        if problem is not None:
            return f"{path} is damaged: {problem}"
    if (folder / ONNX_FILE).is_file():
        problem = onnx_problem(folder / ONNX_FILE)
        if problem is not None:
            return f"{folder / ONNX_FILE} is damaged: {problem}"
    return None


def onnx_problem(path: Path) -> str | None:
    """Why ``path`` is not a whole ONNX graph (it does not parse, or holds no graph), or None."""
    try:
        import onnx
    except ImportError:
        return None  # ONNX Runtime's own error, or the extra's one line, follows
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # noqa: BLE001 - protobuf's DecodeError and others: a truncated or foreign file
        return f"it does not parse as ONNX ({type(err).__name__})"
    return None if model.graph.node else "it holds no graph"


def check_weights(folder: Path) -> None:
    """One line naming the file when the folder's weights are missing or damaged (exit 2)."""
    problem = weights_problem(folder)
    if problem is not None:
        raise UsageError(f"{problem}; train or export the model again, or restore the file")


def weights_size_mb(model_dir: Path) -> float | None:
    files = (
        list(model_dir.glob("*.onnx"))
        or list(model_dir.glob("*.safetensors"))
        or list(model_dir.glob("pytorch_model*.bin"))
    )
    return sum(f.stat().st_size for f in files) / 1e6 if files else None
