"""``distill push``: publish a run to the Hugging Face Hub in one commit, with a model card.

Only the run's own weights, config, tokenizer, ``run.json`` and ``eval_results.json`` go; pickles,
checkpoints and optimizer states never do, and the token is never printed or written.
"""

from __future__ import annotations

import re
from fnmatch import fnmatch
from pathlib import Path

from distill_cli.commands.card import model_card
from distill_cli.config import Config
from distill_cli.errors import DistillError, UsageError
from distill_cli.hub import endpoint, offline_mode, redact_url
from distill_cli.modeling import resolve_model
from distill_cli.onnx_model import ONNX_FILE
from distill_cli.records import EvalResults, ExportRecord
from distill_cli.runs import RunRecord
from distill_cli.weights import check_weights

# The records a run folder holds, published as their public copies (no local path: see ``records.py``).
RECORDS = {r.FILE: r for r in (RunRecord, ExportRecord, EvalResults)}

# What a run folder may publish; everything else (pickles, checkpoints, optimizer states) stays home.
PUBLISH = (
    "*.safetensors",
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "modules.json",
    "sentence_bert_config.json",
    ONNX_FILE,
    *RECORDS,
)
# The sentence-transformers modules of a mean-pooled run (see distill_cli/pooling.py).
PUBLISH_NESTED = ("1_Pooling/config.json", "2_Dense/config.json", "2_Dense/model.safetensors")
NEVER = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt", "*.npy", "optimizer*", "scheduler*", "rng_state*")
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def file_content(file: Path) -> str | bytes:
    """The bytes ``push`` uploads for ``file`` (a record's public copy), or its path to upload as it is."""
    record = RECORDS.get(file.name)
    return record.read(file.parent).public() if record is not None else str(file)


def content_size(file: Path) -> int:
    content = file_content(file)
    return len(content) if isinstance(content, bytes) else file.stat().st_size


def publishable_files(run_dir: Path) -> list[Path]:
    """The run's own files that belong on the Hub: no pickles, no links out of the folder."""
    top = [p for p in sorted(run_dir.iterdir()) if any(fnmatch(p.name, pattern) for pattern in PUBLISH)]
    nested = [run_dir / name for name in PUBLISH_NESTED]
    return [
        p
        for p in top + nested
        if p.is_file() and not p.is_symlink() and not any(fnmatch(p.name, pattern) for pattern in NEVER)
    ]


def check_repo_id(repo_id: str) -> None:
    """OWNER/NAME, by huggingface_hub's own rules (no ``--`` or ``..``, no leading or trailing ``-`` or ``.``)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not REPO_ID.match(repo_id):
        raise UsageError(f"--repo-id {repo_id!r}: expected OWNER/NAME")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise UsageError(f"--repo-id {repo_id!r}: {str(err).splitlines()[0]}") from None


def push(
    cfg: Config,
    model: str,
    repo_id: str,
    private: bool = False,
    commit_message: str | None = None,
    dry_run: bool = False,
) -> dict:
    """Publish a run folder to ``repo_id`` in one commit; ``dry_run`` shows what would go and touches nothing."""
    check_repo_id(repo_id)
    ref = resolve_model(model, cfg)
    if not ref.is_local:
        raise UsageError(f"push publishes a local run: '{model}' is not a run name or folder")
    run_dir = Path(ref.location)
    check_weights(run_dir)  # every weight file its kind needs, whole: a dry run says so too
    files = publishable_files(run_dir)
    if not any(f.suffix in (".safetensors", ".onnx") for f in files):
        raise UsageError(f"{run_dir} has no safetensors or ONNX weights to publish")
    card = model_card(run_dir, repo_id, cfg)
    listing = [{"path": f.relative_to(run_dir).as_posix(), "bytes": content_size(f)} for f in files]
    listing.append({"path": "README.md", "bytes": len(card.encode())})
    result = {"repo_id": repo_id, "files": listing, "card": card}
    if dry_run:
        return result
    message = commit_message or f"Upload {run_dir.name} with distill"
    return {**result, **upload(repo_id, run_dir, files, card, private, message)}


def upload(repo_id: str, run_dir: Path, files: list[Path], card: str, private: bool, commit_message: str) -> dict:
    """Create the repository if needed and upload ``files`` and the card in one commit."""
    from huggingface_hub import CommitOperationAdd, HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    token = get_token()
    if not token:
        raise UsageError("not logged in: run `hf auth login` or set HF_TOKEN")
    if offline_mode():
        raise DistillError("cannot push in offline mode (HF_HUB_OFFLINE=1); unset it to publish")
    api = HfApi(endpoint=endpoint(), token=token)
    ops = [
        CommitOperationAdd(path_in_repo=f.relative_to(run_dir).as_posix(), path_or_fileobj=file_content(f))
        for f in files
    ]
    ops.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.encode()))
    try:
        url = api.create_repo(repo_id, private=private or None, exist_ok=True, repo_type="model")
        commit = api.create_commit(repo_id, ops, commit_message=commit_message)
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        why = {
            401: "authentication failed: the token is invalid or expired",
            403: f"permission denied: the token cannot write to {repo_id}",
            404: f"not found: {repo_id} (check the owner name)",
        }.get(status, f"the Hub answered {status}")
        raise DistillError(f"push to {repo_id} failed ({status}): {why}".replace(token, "***")) from None
    except Exception as err:
        # connection refused, DNS failure, timeouts: OSError, or httpx's own errors (which are not OSError)
        if isinstance(err, OSError) or type(err).__module__.startswith(("httpx", "httpcore")):
            where = redact_url(endpoint())
            raise DistillError(f"push to {repo_id} failed: cannot reach {where} ({type(err).__name__})") from None
        raise
    commit_url = getattr(commit, "commit_url", None)
    return {"url": redact_url(str(url)), "commit": redact_url(commit_url) if commit_url else None}


def render_dry_run(result: dict) -> None:
    """The files that would go, and the card, for people (on stderr)."""
    from rich.table import Table

    from distill_cli.ui import console

    table = Table(title=f"would upload to {result['repo_id']}", title_justify="left")
    table.add_column("path")
    table.add_column("bytes", justify="right")
    for f in result["files"]:
        table.add_row(f["path"], f"{f['bytes']:,}")
    console.print(table)
    console.print(result["card"], markup=False, soft_wrap=True)
