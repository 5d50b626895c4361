"""Exported classifiers run by ONNX Runtime, called like a transformers model so that every command
(``evaluate``, ``predict``, ``push``) takes an exported folder beside a PyTorch one.

An exported folder holds ``model.onnx`` (inputs ``input_ids``, ``attention_mask`` and, where the tokenizer
makes them, ``token_type_ids``; output ``logits``), the tokenizer, ``config.json`` with the labels, and
``export.json``: the parent model, the export settings and the parity checks. A graph exported by this
tool also outputs ``features``, the pooled vector the head reads, for the feature out-of-scope scores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers.modeling_outputs import SequenceClassifierOutput

from distill_cli.errors import DistillError
from distill_cli.extras import require
from distill_cli.weights import ONNX_FILE


def is_onnx_folder(path: Path) -> bool:
    return (path / ONNX_FILE).is_file()


class OnnxClassifier:
    """``model(**encoded).logits`` through an ONNX Runtime session on the CPU, with torch's thread count."""

    def __init__(self, folder: Path, file: str = ONNX_FILE):
        from transformers import AutoConfig

        ort = require("onnxruntime")
        self.folder = Path(folder)
        self.config = AutoConfig.from_pretrained(self.folder)
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        # No busy-waiting between runs: spinning threads would steal the cores from whatever runs next
        # (another model timed round-robin by `evaluate`, or the rest of the user's program).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.file = self.folder / file
        self.session = ort.InferenceSession(str(self.file), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.has_features = "features" in [o.name for o in self.session.get_outputs()]

    def __call__(self, features: bool = False, **encoded) -> SequenceClassifierOutput:
        """The logits; with ``features``, the pooled features too (as ``hidden_states[-1]``)."""
        feeds = {name: np.asarray(encoded[name], dtype=np.int64) for name in self.input_names}
        if not features:
            return SequenceClassifierOutput(logits=torch.from_numpy(self.session.run(["logits"], feeds)[0]))
        if not self.has_features:
            raise DistillError(f"{self.file} has no 'features' output: export the model again with this version")
        logits, pooled = self.session.run(["logits", "features"], feeds)
        return SequenceClassifierOutput(logits=torch.from_numpy(logits), hidden_states=(torch.from_numpy(pooled),))

    def eval(self) -> OnnxClassifier:
        return self

    def to(self, *args, **kwargs) -> OnnxClassifier:
        """As a torch module's: here a no-op, ONNX Runtime runs the graph on the CPU (so a teacher may be an
        exported folder, int8 included, whatever device the student trains on)."""
        return self

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def num_parameters(self) -> int:
        """Elements of the graph's weights (for an int8 graph: its quantized weights, scales and zero points)."""
        import onnx

        graph = onnx.load(str(self.file), load_external_data=False).graph
        return int(sum(np.prod(t.dims) for t in graph.initializer))
