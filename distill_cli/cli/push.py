"""`distill push`: parse, call ``commands.publish``, render."""

from typing import Annotated, Optional

import typer

from distill_cli.config import load_step
from distill_cli.errors import UsageError
from distill_cli.options import PUSH, ConfigOpt, JsonOpt, complete_model, config_flags
from distill_cli.ui import emit_json, info


@config_flags(*PUSH)
def push(
    model: Annotated[str, typer.Argument(autocompletion=complete_model, help="Run name or run folder.")],
    repo_id: Annotated[
        Optional[str], typer.Option("--repo-id", help="OWNER/NAME on the Hub (or push: repo_id).")
    ] = None,
    config: ConfigOpt = None,
    private: Annotated[
        Optional[bool], typer.Option("--private/--public", help="Create the repository as private.", show_default=False)
    ] = None,
    commit_message: Annotated[Optional[str], typer.Option("--commit-message", help="Commit message.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the files and the card; upload nothing.")] = False,
    json_out: JsonOpt = False,
    **overrides,
) -> None:
    """Publish a run to the Hugging Face Hub with a model card. The token comes from HF_TOKEN or `hf auth login`."""
    flags = dict(repo_id=repo_id, private=private, commit_message=commit_message)
    cfg, o = load_step(config, "push", {**overrides, **flags}, {})
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
