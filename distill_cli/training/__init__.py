"""Training: the loss, the ``Trainer`` subclass, the teacher-logit cache, callbacks and pickle-free checkpoints.
The recipe that puts them together is ``distill_cli.commands.train``."""
