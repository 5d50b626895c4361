"""Transfer sets and augmentation: rows only the teacher labels, never leaking the evaluation, paid once."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import DEMO, TRAIN_FLAGS, assert_one_line_error, distill_from_teacher, run_cli

from distill_cli.config import Config
from distill_cli.data.transfer import UNLABELLED, augment, extra_rows, normalised, splice
from distill_cli.training.loss import distillation_loss

DEMO_DATA = json.loads(DEMO.read_text())
HELD_OUT = [text for split in ("val", "test", "oos_val", "oos_test") for text, _ in DEMO_DATA.get(split, [])]
TRAIN = [text for split in ("train", "oos_train") for text, _ in DEMO_DATA[split]]


def test_transfer_rows_equal_to_an_evaluation_or_labelled_query_are_dropped(tmp_path):
    assert HELD_OUT and TRAIN
    logs = tmp_path / "logs.txt"
    leak = "  " + HELD_OUT[0].upper().replace(" ", "   ") + " "  # the same query, case and spaces aside
    logs.write_text("\n".join(["how tall is a giraffe", leak, TRAIN[0], "how tall is a giraffe", "", "new one"]))
    rows = extra_rows(Config(transfer_set=str(logs)), TRAIN, HELD_OUT, "[MASK]")
    assert rows.transfer == ["how tall is a giraffe", "new one"]
    assert rows.counts == {
        "transfer_read": 5,
        "labelled": len(TRAIN),
        "transfer": 2,
        "augmented": 0,
        "dropped_as_evaluation_queries": 1,
        "dropped_as_duplicates": 2,
    }


def test_augmentation_is_deterministic_and_never_the_source_or_an_evaluation_query():
    text = "please set an alarm for seven tomorrow"
    first = augment(text, 4, seed=42, mask_token="[MASK]")
    assert first == augment(text, 4, seed=42, mask_token="[MASK]")
    assert first != augment(text, 4, seed=7, mask_token="[MASK]")
    assert len(first) == len(set(first)) == 4 and text not in first
    assert all(v.split() != text.split() for v in first)
    assert augment("hi", 3, 42, "[MASK]") == ["[MASK]"]  # a one-word query has one variant to give

    rows = extra_rows(Config(augment=3), TRAIN, HELD_OUT, "[MASK]")
    labelled, evaluation = {normalised(t) for t in TRAIN}, {normalised(t) for t in HELD_OUT}
    assert rows.augmented and not any(normalised(v) in labelled | evaluation for v in rows.augmented)
    assert len({normalised(v) for v in rows.augmented}) == len(rows.augmented)
    # A variant that happens to be an evaluation query is dropped: make one evaluation query a variant.
    variant = augment(TRAIN[0], 3, 42, "[MASK]")[0]
    guarded = extra_rows(Config(augment=3), TRAIN, [*HELD_OUT, variant], "[MASK]")
    assert variant not in guarded.augmented and guarded.counts["dropped_as_evaluation_queries"] >= 1


def test_a_spliced_query_joins_the_start_of_one_query_to_the_end_of_another():
    texts = ["please set an alarm for seven", "what is the weather in paris", "hi", "book a table for two"]
    spliced = list(splice(texts, 3, seed=42))
    assert spliced == list(splice(texts, 3, seed=42)) and spliced != list(splice(texts, 3, seed=7))
    assert len(spliced) == 3 * len(texts) and list(splice(["only one query"], 3, 42)) == []
    for k, text in enumerate(spliced):
        source = texts[k // 3].split()
        words = text.split()
        head = next(n for n in range(len(words), 0, -1) if words[:n] == source[:n])  # the source's first words
        assert 1 <= head <= max(1, len(source) - 1)  # at least one of its words, never all (unless it has one)
        tail = words[head:]
        assert not tail or any(o.split()[-len(tail) :] == tail for o in texts if o != texts[k // 3])

    rows = extra_rows(Config(augment=1, splice=2), TRAIN, HELD_OUT, "[MASK]")
    assert rows.counts["spliced"] == len(rows.spliced) > 0 and rows.counts["augmented"] == len(rows.augmented) > 0
    labelled, evaluation = {normalised(t) for t in TRAIN}, {normalised(t) for t in HELD_OUT}
    assert not any(normalised(t) in labelled | evaluation for t in rows.spliced)
    assert not set(rows.spliced) & set(rows.augmented) and rows.count == len(rows.texts())
    assert "spliced" not in extra_rows(Config(augment=1), TRAIN, HELD_OUT, "[MASK]").counts  # as before: unchanged


def test_an_unlabelled_row_gets_the_kd_term_alone():
    torch.manual_seed(0)
    student = torch.randn(3, 5, requires_grad=True)
    teacher, labels = torch.randn(3, 5), torch.tensor([2, UNLABELLED, 4])
    alpha, t, w = 0.3, 2.0, 0.7
    distillation_loss(student, labels, teacher, alpha, t, unlabelled_weight=w).backward()
    # The unlabelled row's gradient is that of w * T^2 * KL alone (averaged over the 3 rows): no CE term.
    row = student[1:2].detach().clone().requires_grad_(True)
    kl = F.kl_div(row.div(t).log_softmax(-1), teacher[1:2].div(t).softmax(-1), reduction="sum")
    (w * t * t * kl / 3).backward()
    assert torch.allclose(student.grad[1], row.grad[0], atol=1e-6)
    # Whatever label value an unlabelled row carries, nothing changes; a fully labelled batch is the usual loss.
    other = distillation_loss(student, torch.tensor([2, -1, 4]), teacher, alpha, t, w)
    assert other.item() == pytest.approx(distillation_loss(student, labels, teacher, alpha, t, w).item())
    full = torch.tensor([2, 0, 4])
    kl_mean = F.kl_div(student.div(t).log_softmax(-1), teacher.div(t).softmax(-1), reduction="batchmean")
    usual = alpha * F.cross_entropy(student, full) + (1 - alpha) * t * t * kl_mean
    assert distillation_loss(student, full, teacher, alpha, t).item() == pytest.approx(usual.item(), rel=1e-6)


def test_a_distillation_with_a_transfer_set_and_augmentation_pays_the_teacher_once(runs, tmp_path):
    logs = tmp_path / "logs.csv"
    logs.write_text("query,label\nwhat time does the bank open,x\nis it going to be sunny,y\n" + f"{HELD_OUT[0]},z\n")
    flags = ("--student-layers", "2", "--epochs", "2", "--transfer-set", logs)
    flags += ("--augment", "2", "--splice", "1")
    first = distill_from_teacher(runs, "teacher", *flags, "--name", "extra", "--json")
    assert first.code == 0, first.stderr
    rows = first.json["rows"]
    assert rows["transfer"] == 2 and rows["dropped_as_evaluation_queries"] >= 1
    assert rows["augmented"] > 0 and rows["spliced"] > 0 and f"{rows['spliced']:,} spliced queries" in first.stderr
    record = json.loads((runs / "extra" / "run.json").read_text())
    assert record["rows"] == rows and record["teacher"]["cache_reused"] is False
    assert "transfer set: 2 of 3 queries kept" in first.stderr
    again = distill_from_teacher(runs, "teacher", *flags, "--name", "extra2", "--json")
    assert again.code == 0, again.stderr
    assert json.loads((runs / "extra2" / "run.json").read_text())["teacher"]["cache_reused"] is True
    assert again.json["rows"] == rows  # the same rows: deterministic, so a resume or a rerun sees them too


def test_a_search_builds_the_extra_rows_once(runs, tiny_distilbert, tmp_path):
    import yaml

    config = tmp_path / "search.yaml"
    config.write_text(yaml.safe_dump({"augment": 1, "epochs": 1, "search": {"epochs": None, "alpha": [0.2, 0.8]}}))
    flags = ("--config", config, "--runs-dir", runs, "--teacher", "teacher", "--student", tiny_distilbert)
    r = run_cli("search", *TRAIN_FLAGS, *flags, "--name", "study", "--trials", "2")
    assert r.code == 0, r.stderr
    assert r.stderr.count("augmented queries") == 1
    assert json.loads((runs / "study" / "best" / "run.json").read_text())["rows"]["augmented"] > 0


def test_bad_transfer_inputs_exit_2_before_any_compute(runs, tmp_path):
    (tmp_path / "empty.txt").write_text("\n  \n")
    (tmp_path / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (tmp_path / "nocol.csv").write_text("intent,score\nalarm,1\n")
    (tmp_path / "data.xml").write_text("<x/>")
    cases = [
        (("--transfer-set", tmp_path / "empty.txt"), "holds no queries"),
        (("--transfer-set", tmp_path / "binary.txt"), "is not a text file"),
        (("--transfer-set", tmp_path / "nocol.csv"), "no text column among intent, score"),
        (("--transfer-set", tmp_path / "missing.txt"), "no such file"),
        (("--transfer-set", tmp_path / "data.xml"), "expected .txt"),
        (("--augment", "-1"), "'augment': input should be greater than or equal to 0"),
        (("--augment", "2", "--alpha", "1"), "use distill, alpha < 1"),
        (("--splice", "-1"), "'splice': input should be greater than or equal to 0"),
        (("--splice", "1", "--alpha", "1"), "use distill, alpha < 1"),
    ]
    for flags, needle in cases:
        r = distill_from_teacher(runs, "teacher", *flags, "--name", "bad")
        assert_one_line_error(r, 2, needle)
        assert not (runs / "bad").exists() and not (runs / "bad.partial").exists()
    r = run_cli("finetune", *TRAIN_FLAGS, "--runs-dir", runs, "--student", "teacher", "--augment", "2")
    assert r.code == 2 and "--augment" in r.stderr


def test_the_transfer_file_is_read_line_by_line_and_compared_by_digests(tmp_path):
    from distill_cli.config import Config
    from distill_cli.data.transfer import extra_rows, read_transfer_set

    path = tmp_path / "logs.txt"
    path.write_bytes("\ufeffplay Some  jazz\n\n  book a table \nPLAY some jazz\nwhat time is it\n".encode())
    expected = ["play Some  jazz", "book a table", "PLAY some jazz", "what time is it"]
    assert read_transfer_set(str(path), None) == expected
    cfg = Config(transfer_set=str(path), alpha=0.5)
    rows = extra_rows(cfg, labelled=["Book a table"], held_out=["what time is it"], mask_token="[MASK]")
    assert rows.transfer == ["play Some  jazz"]  # the rest: a labelled query, a duplicate, an evaluation query
    assert rows.counts["dropped_as_duplicates"] == 2 and rows.counts["dropped_as_evaluation_queries"] == 1
    (tmp_path / "bad.txt").write_bytes(b"fine\nstill fine\n\xff\xfe\n")
    from distill_cli.errors import UsageError

    with pytest.raises(UsageError, match=r"bad.txt is not a text file \(line 3 is not UTF-8\)"):
        read_transfer_set(str(tmp_path / "bad.txt"), None)
