"""distill: distill intent classifiers from a large teacher into a small fast student."""

__version__ = "0.1.0"
