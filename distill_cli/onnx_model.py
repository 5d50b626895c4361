"""Exported classifiers run by ONNX Runtime, called like a transformers model so that every command
(``evaluate``, ``predict``, ``push``) takes an exported folder beside a PyTorch one.

An exported folder holds ``model.onnx`` (inputs ``input_ids``, ``attention_mask`` and, where the tokenizer
makes them, ``token_type_ids``; output ``logits``), the tokenizer, ``config.json`` with the labels, and
``export.json``: the parent model, the export settings and the parity checks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers.modeling_outputs import SequenceClassifierOutput

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

    def __call__(self, **encoded) -> SequenceClassifierOutput:
        feeds = {name: np.asarray(encoded[name], dtype=np.int64) for name in self.input_names}
        return SequenceClassifierOutput(logits=torch.from_numpy(self.session.run(["logits"], feeds)[0]))

    def eval(self) -> OnnxClassifier:
        return self

    def num_parameters(self) -> int:
        """Elements of the graph's weights (for an int8 graph: its quantized weights, scales and zero points)."""
        import onnx

        graph = onnx.load(str(self.file), load_external_data=False).graph
        return int(sum(np.prod(t.dims) for t in graph.initializer))
