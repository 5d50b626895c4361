"""The Hugging Face Hub as this tool sees it: its endpoint, offline mode, whether it can be reached, and
what a Hub repository id looks like; and URLs made safe to print. Imports nothing of ours, so every module
may use it."""

from __future__ import annotations

import functools
import os
import re
import socket
from urllib.parse import urlparse

TRUE = {"1", "true", "yes", "on"}
HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def offline_mode() -> bool:
    """``HF_HUB_OFFLINE`` is set: the user asked for no network."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in TRUE


def is_hub_id(spec: str) -> bool:
    """``name`` or ``owner/name`` as the Hub spells repository ids; never something that reads as a path."""
    return not spec.startswith((".", "/", "~")) and HUB_ID.match(spec) is not None


@functools.cache
def hub_unreachable_reason(timeout: float = 3.0) -> str | None:
    """Why the Hub cannot be used right now, or None. One quick TCP connect instead of the client's
    retry loop, which spends ~25 s before it gives up on a machine without network."""
    if offline_mode():
        return "offline mode (HF_HUB_OFFLINE=1)"
    url = urlparse(endpoint())
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as err:
        return f"cannot connect to {redact_url(endpoint())} ({err.strerror or err})"
    return None


def redact_url(url: str) -> str:
    """``url`` without the password of its ``user:password@`` part: safe to print or store."""
    parts = urlparse(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


# ``scheme://user:password@`` anywhere in a text (an error message of a library that names the URL it used).
CREDENTIALS = re.compile(r"(\b[a-zA-Z][\w+.-]*://[^\s/:@]*):[^\s/@]+@")


def redact_urls(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``: what the CLI prints goes through it."""
    return CREDENTIALS.sub(r"\1:***@", text)
