"""Optional dependencies: each is imported where it is needed, and a missing one is one line naming the
extra that installs it (exit 2), checked before any compute."""

from __future__ import annotations

from types import ModuleType

from distill_cli.errors import UsageError

# module -> (what needs it, the extra of distill-cli that installs it)
EXTRAS = {
    "optuna": ("distill search", "search"),
    "model2vec": ("static students", "static"),
    "onnxruntime": ("ONNX (export and exported folders)", "export"),
    "onnx": ("ONNX (export and exported folders)", "export"),
    "matplotlib": ("--plot", "plot"),
    "evaluate": ("--metric", "metrics"),
}


def require(module: str) -> ModuleType:
    """``module``, imported; or one line saying what needs it and how to install it."""
    try:
        return __import__(module)  # the import statement's hook (not importlib's), as tests that block one use
    except ImportError:
        what, extra = EXTRAS[module]
        raise UsageError(f"{what} needs {module}: pip install 'distill-cli[{extra}]'") from None
