"""Reading a config file: one YAML mapping, every failure one line naming the file, and no document whose
aliases would expand past ``MAX_YAML_NODES`` values (a "billion laughs") built at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from distill_cli.errors import UsageError


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping, turning every failure into one line naming the file."""
    if not path.is_file():
        raise UsageError(f"config file not found: {path}")
    try:
        data = safe_load_bounded(path.read_text(encoding="utf-8"), path)
    except UnicodeDecodeError:
        raise UsageError(f"config {path} is not UTF-8 text") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UsageError(f"config {path}: invalid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"config {path}: expected a mapping of keys to values, got {type(data).__name__}")
    return data


MAX_YAML_NODES = 100_000  # a config has tens of keys; aliases that expand past this are a "billion laughs"


def safe_load_bounded(text: str, path: Path) -> Any:
    """``yaml.safe_load``, refusing a document whose aliases would expand to more than ``MAX_YAML_NODES``
    values (or refer to themselves) before any of it is built: the node graph shares aliased nodes, so it is
    counted in time linear in its size."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        expanded_size(node, {}, set(), path)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def expanded_size(node, sizes: dict[int, int], open_nodes: set[int], path: Path) -> int:
    """How many values ``node`` stands for once every alias in it is expanded (memoised per shared node)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise UsageError(f"config {path}: an alias refers to itself; a config is a tree of plain values")
    open_nodes.add(key)
    children = node.value if isinstance(node, yaml.SequenceNode) else []
    if isinstance(node, yaml.MappingNode):
        children = [item for pair in node.value for item in pair]
    total = 1 + sum(expanded_size(child, sizes, open_nodes, path) for child in children)
    open_nodes.discard(key)
    if total > MAX_YAML_NODES:
        line = node.start_mark.line + 1
        raise UsageError(
            f"config {path}: the aliases at line {line} expand to more than {MAX_YAML_NODES:,} values; "
            "a config is a few settings: write them out"
        )
    sizes[key] = total
    return total
