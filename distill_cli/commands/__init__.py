"""What each command does, behind the CLI: ``prepare``, ``train`` (``finetune`` and ``distill``),
``evaluate`` and ``publish`` (``push``). ``distill_cli.cli`` parses the flags, calls these and renders."""
