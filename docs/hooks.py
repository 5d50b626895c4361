"""mkdocs hooks: the generated references (``distill_cli.docs_reference``) and the benchmarks page, which
is BENCHMARKS.md itself, so that the site and the repository never disagree."""

from pathlib import Path

from mkdocs.structure.files import File

from distill_cli.docs_reference import fill


def on_files(files, config):
    benchmarks = Path(config.config_file_path).parent / "BENCHMARKS.md"
    files.append(File.generated(config, "benchmarks.md", content=benchmarks.read_text(encoding="utf-8")))
    return files


def on_page_markdown(markdown, page, config, files):
    return fill(markdown)
