"""``distill`` under ``torchrun`` with the teacher's pass watched: run as ``python -m torch.distributed.run ...
tests/torchrun_teacher_pass.py distill ...``. Each process appends the rows of every piece it saves to
``$PIECES_LOG/rank-R.txt``; with ``$DIE_RANK`` set, that process dies (``os._exit``, no clean-up) right
after saving its first piece, as a rank does when its machine fails mid-pass."""

from __future__ import annotations

import os
from pathlib import Path

from distill_cli.training import teacher_cache

teacher_cache.PIECE_ROWS = int(os.environ.get("PIECE_ROWS", teacher_cache.PIECE_ROWS))
rank, real_write = int(os.environ["RANK"]), teacher_cache.write_piece


def write_piece(path, rows, logits):
    real_write(path, rows, logits)
    with Path(os.environ["PIECES_LOG"], f"rank-{rank}.txt").open("a") as log:
        log.write(f"{len(rows)}\n")
    if os.environ.get("DIE_RANK") == str(rank):
        os._exit(3)


teacher_cache.write_piece = write_piece

if __name__ == "__main__":
    from distill_cli.cli import main

    main()
