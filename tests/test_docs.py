"""The documentation: the site builds with warnings as errors, its references hold every config key and
every command (they are generated from the code), a page opens in a real browser, the README stays short
and its loading snippet gives `distill predict`'s answers."""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """``make docs``'s build (strict: a warning, a broken link or anchor fails it) into a folder of its own."""
    pytest.importorskip("mkdocs", reason="mkdocs is in the dev extra")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    build = [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(out)]
    done = subprocess.run(build, cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return out


def page_text(site: Path, page: str) -> str:
    return (site / page / "index.html").read_text(encoding="utf-8")


def test_the_references_hold_every_key_and_command(site):
    from distill_cli.cli import REGISTRY
    from distill_cli.config import STEP_OPTIONS, Config

    config = page_text(site, "configuration")
    for model in (Config, *STEP_OPTIONS.values()):
        for key in model.model_fields:
            assert f"<code>{key}</code>" in config, key
    commands = page_text(site, "commands")
    for name in (*REGISTRY, "run"):
        assert f"distill {name}</code>" in commands, name
    assert "<code>--until</code>" in commands and "<code>--max-accuracy-drop</code>" in commands
    # the benchmarks page is BENCHMARKS.md itself; the demo's config is shown as it is in configs/
    assert "The suite" in page_text(site, "benchmarks")
    assert "a 2-layer student cut from the teacher" in page_text(site, "your-data")


def test_a_key_added_to_the_config_appears_in_the_reference():
    from pydantic import Field, create_model

    from distill_cli import docs_reference
    from distill_cli.config import Config

    extended = create_model("Extended", __base__=Config, brand_new=(int, Field(7, description="Something new.")))
    table = docs_reference.fields_table(extended)
    assert "| `brand_new` | int | `7` | Something new. |" in table
    assert docs_reference.fill("x <!-- generated: config --> y").count("`contrastive_weight`") == 1


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the site's requests are not the test's output
        pass


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (Debian's package; .ci/run installs it)")
def test_a_page_opens_in_a_real_browser(site):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    errors = []
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(f"http://127.0.0.1:{server.server_port}/configuration/")
            title = page.title()
            heading = page.locator("article h1").inner_text()
            rows = page.locator("article table tbody tr").count()
            page.goto(f"http://127.0.0.1:{server.server_port}/")
            links = [page.locator("nav a").nth(i).inner_text() for i in range(page.locator("nav a").count())]
            browser.close()
    finally:
        server.shutdown()
    assert errors == [], errors
    assert "Configuration" in title and heading.strip().rstrip("¶") == "Configuration"
    assert rows >= 60  # every key of the Config and of the sections
    assert any("Your own data" in text for text in links)


def test_the_readme_fits_on_two_screens():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 150, len(lines)
    assert lines[3].startswith("make demo   # creates .venv, installs, then `distill run`")
    assert lines[4].startswith("make test   # creates .venv if needed, installs, runs the test suite")


def readme_snippet() -> str:
    text = (REPO / "README.md").read_text()
    found = re.search(r"<!-- snippet: load[^>]*-->\n```python\n(.*?)```", text, re.S)
    assert found, "the README's loading snippet"
    return found.group(1)


@pytest.fixture(scope="module")
def export_folder(tiny_runs, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("export") / "student-onnx"
    e = run_cli("export", "student", "--runs-dir", tiny_runs, "--output", folder, "--max-accuracy-drop", "100")
    assert e.code == 0, e.stderr
    return folder


@pytest.mark.parametrize("score", ["max_softmax", "energy", "mahalanobis", "energy+mahalanobis", "knn"])
def test_the_readme_snippet_gives_predicts_answers(export_folder, tmp_path, score):
    """With each score the rule may have chosen (set in a copy's run.json, with a threshold that splits
    the texts), the snippet gives `distill predict`'s answers and confidences."""
    folder = tmp_path / "export"
    shutil.copytree(export_folder, folder)
    if score == "knn":  # a rule that reads knn keeps the training queries' vectors: some, of the right width
        from distill_cli.oos_scores import FeatureStats, normalised

        stats = FeatureStats.load(folder)
        vectors = np.random.default_rng(0).normal(size=(12, stats.whitening.shape[0]))
        stats.bank, stats.k = normalised(vectors).astype(np.float16).astype(np.float32), 3
        stats.save(folder)
    texts = ["what's the weather like in paris", "sing me a song", "wake me up at seven", "book a table",
             "what is my balance", "tell me a joke"]  # fmt: skip
    record = json.loads((folder / "run.json").read_text())
    record["oos_rule"]["score"] = score
    (folder / "run.json").write_text(json.dumps(record))
    first = run_cli("predict", folder, *texts, "--json")
    assert first.code == 0, first.stderr
    confidences = sorted(json.loads(line)["confidence"] for line in first.stdout.splitlines())
    record["oos_rule"]["threshold"] = (confidences[2] + confidences[3]) / 2  # half the texts out of scope
    (folder / "run.json").write_text(json.dumps(record))

    code = readme_snippet().replace('"runs/demo/student-onnx-int8"', repr(str(folder)))
    code = re.sub(r"texts = \[.*?\]\n", f"texts = {texts!r}\n", code)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the README's own code, as a user runs it
    r = run_cli("predict", folder, *texts, "--json")
    assert r.code == 0, r.stderr
    expected = [json.loads(line) for line in r.stdout.splitlines()]
    assert scope["answers"] == [e["intent"] for e in expected]
    assert sum(e["out_of_scope"] for e in expected) >= 3
    assert [float(c) for c in scope["confidence"]] == pytest.approx([e["confidence"] for e in expected], abs=1e-4)
