"""Trainer callbacks: rich progress instead of tqdm bars, a clean stop on Ctrl-C or SIGTERM, and the
validation accuracy of each epoch reported to an Optuna trial."""

from __future__ import annotations

import signal
import time

from transformers import TrainerCallback

from distill_cli.metrics import EXPECTED, format_metrics
from distill_cli.ui import Bar


class RichProgress(TrainerCallback):
    """One bar per run (epoch, step, loss, samples/s, ETA) and one line per evaluation, on rank 0."""

    def __init__(self, description: str):
        self.description, self.bar, self.loss = description, None, None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.bar = Bar(self.description, state.max_steps)
            self.start, self.start_step = time.perf_counter(), state.global_step

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            elapsed = time.perf_counter() - self.start
            rate = (
                (state.global_step - self.start_step)
                * args.train_batch_size
                * args.gradient_accumulation_steps
                * args.world_size
                / max(elapsed, 1e-9)
            )
            loss = f" loss {self.loss:.4f}" if self.loss is not None else ""
            self.bar.update(state.global_step, f"epoch {state.epoch:.2f}{loss} {rate:.0f} samples/s")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.loss = logs["loss"]

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.bar is not None and metrics:
            self.bar.log(f"epoch {state.epoch:.0f}: " + format_metrics(metrics, prefix="eval_"))

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()


class StopOnSignal(TrainerCallback):
    """SIGINT/SIGTERM: finish the current step, save a checkpoint and stop; a second signal aborts."""

    def __init__(self):
        self.signum = None

    def install(self):
        self.previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}

    def uninstall(self):
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def on_step_end(self, args, state, control, **kwargs):
        if self.signum is not None:
            control.should_save = True
            control.should_training_stop = True

    def on_epoch_end(self, args, state, control, **kwargs):
        # The checkpoint is already saved: no half-epoch evaluation in the history, and no second save
        # whose RNG state (advanced by the evaluation) would make the resumed run diverge.
        if self.signum is not None:
            control.should_evaluate = False
            control.should_save = False


class ReportToTrial(TrainerCallback):
    """Each epoch's selection metric (``metrics.EXPECTED``) goes to the Optuna ``trial``; a trial the pruner
    condemns stops at the end of that epoch (``pruned`` says so)."""

    def __init__(self, trial):
        self.trial, self.values, self.pruned = trial, [], False

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        key = f"eval_{EXPECTED.key}"
        if not metrics or key not in metrics:
            return
        self.values.append(metrics[key])
        self.trial.report(metrics[key], step=len(self.values))
        if self.trial.should_prune():
            self.pruned = control.should_training_stop = True

