"""A model as it is served, loaded one way by ``predict``, ``evaluate`` and ``export``: the classifier, its
tokenizer, its labels in output order, the out-of-scope rule its run chose (``run.json``) and the statistics
its feature scores read (``oos_features.safetensors``), and the outputs those scores read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distill_cli import modeling
from distill_cli.config import Config
from distill_cli.oos import OOSRule, saved_stats
from distill_cli.oos_scores import FeatureStats
from distill_cli.runs import oos_rule_of


@dataclass
class ServedModel:
    ref: modeling.ModelRef
    model: object
    tokenizer: object
    labels: list[str]  # the model's outputs, in order
    rule: OOSRule | None  # None: argmax decides
    stats: FeatureStats | None  # where the rule reads features (or, asked for, wherever they were saved)

    @property
    def intents(self) -> list[int]:
        """The outputs the out-of-scope scores read: all but the rule's out-of-scope one."""
        return self.rule.intents(self.labels) if self.rule is not None else list(range(len(self.labels)))

    def confidence(self, logits: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        """The rule's confidence of each row (higher: more in scope)."""
        return self.rule.confidence(logits, features, self.stats, self.intents)

    def turned_away(self, logits: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        """Which rows the rule answers out of scope."""
        return self.confidence(logits, features) < self.rule.threshold


def load_served(cfg: Config, ref: modeling.ModelRef, every_stat: bool = False) -> ServedModel:
    """``ref`` as it is served; ``every_stat``: its feature statistics wherever they were saved (``evaluate``
    reports every score), not only where its rule reads them."""
    tokenizer = modeling.load_tokenizer(ref, cfg)
    model, labels = modeling.load_classifier_for_inference(ref, cfg)
    rule = oos_rule_of(ref.run_dir)
    stats = saved_stats(Path(ref.location) if ref.is_local else None, rule, always=every_stat)
    return ServedModel(ref, model, tokenizer, labels, rule, stats)
