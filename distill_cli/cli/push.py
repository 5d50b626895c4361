"""`distill push`: parse, call ``commands.publish``, render."""

from typing import Annotated

import typer

from distill_cli.config import PushOptions, load_step
from distill_cli.errors import UsageError
from distill_cli.options import PUSH, PUSH_OPTIONS, ConfigOpt, JsonOpt, complete_model, config_flags
from distill_cli.ui import emit_json, info


@config_flags(*PUSH_OPTIONS, model=PushOptions)
@config_flags(*PUSH)
def push(
    model: Annotated[str, typer.Argument(autocompletion=complete_model, help="Run name or run folder.")],
    config: ConfigOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the files and the card; upload nothing.")] = False,
    json_out: JsonOpt = False,
    **overrides,
) -> None:
    """Publish a run to the Hugging Face Hub with a model card. The token comes from HF_TOKEN or `hf auth login`."""
    cfg, o = load_step(config, "push", overrides, {})  # the Config's keys and push's own options
    if not o.repo_id:
        raise UsageError("push needs a repository: --repo-id OWNER/NAME (or repo_id: in the config's push: section)")
    from distill_cli.commands import publish

    result = publish.push(cfg, model, o.repo_id, private=o.private, commit_message=o.commit_message, dry_run=dry_run)
    if dry_run:
        publish.render_dry_run(result)
    else:
        info(f"pushed {len(result['files'])} files to {result['url']}")
    if json_out:
        emit_json(result)
