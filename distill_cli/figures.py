"""Figures (``--plot``): matplotlib without a display, and a PNG written atomically."""

from __future__ import annotations

from pathlib import Path

from distill_cli.files import atomic_file


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend: no display needed (CI, a server)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    """``fig`` as a PNG at ``path``, whole or not at all, and closed."""
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
    pyplot().close(fig)
