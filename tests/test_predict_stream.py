"""`distill predict` on a stream: lines are answered as they come, in small batches, so that a pipe that
stays open (`tail -f logs | distill predict run --json`) gets its answers before it ends."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys

import pytest
from conftest import assert_one_line_error, run_cli


def read_line(proc: subprocess.Popen, timeout: float = 120.0) -> str:
    """The next line of ``proc``'s stdout, or a failure if none comes within ``timeout`` (generous: this
    checks that an answer comes before the end of input, not how fast)."""
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    if not selector.select(timeout):
        proc.kill()
        pytest.fail(f"no answer within {timeout} s: {proc.stderr.read().decode()[-2000:]}")
    return proc.stdout.readline().decode()


def test_an_open_pipe_is_answered_line_by_line_before_it_ends(runs):
    args = [sys.executable, "-m", "distill_cli", "predict", "student", "--runs-dir", str(runs), "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        for text in ("play some jazz", "set an alarm for 7 am"):
            proc.stdin.write(f"{text}\n".encode())
            proc.stdin.flush()
            answer = json.loads(read_line(proc))
            assert answer["text"] == text and proc.poll() is None  # answered, and the pipe is still open
        proc.stdin.write(b"\n  \nwhat is the weather\n")  # blank lines are skipped
        proc.stdin.close()
        assert json.loads(read_line(proc))["text"] == "what is the weather"
        assert proc.wait(timeout=120) == 0
    finally:
        proc.kill()


def test_batches_close_at_their_size_or_when_the_input_pauses():
    import threading

    from distill_cli.commands.predict import batches

    assert list(batches(iter(f"q{i}" for i in range(7)), size=3)) == [["q0", "q1", "q2"], ["q3", "q4", "q5"], ["q6"]]
    # A source that pauses: the first line is handed on without waiting for the next.
    release = threading.Event()

    def paused():
        yield "first"
        release.wait(30)
        yield "second"

    stream = batches(paused(), size=8, wait_s=0.01)
    assert next(stream) == ["first"]
    release.set()
    assert next(stream) == ["second"]


def test_a_file_with_a_bad_line_names_it(runs, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"play some jazz\n\xff\xfe broken\n")
    r = run_cli("predict", "student", "--runs-dir", runs, "--file", bad, "--json")
    assert r.code == 2 and "bad.txt, line 2: not UTF-8 text" in r.stderr and "Traceback" not in r.stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    assert_one_line_error(run_cli("predict", "student", "--runs-dir", runs, "--file", empty), 2, "no text")
