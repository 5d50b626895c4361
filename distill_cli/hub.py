"""The Hugging Face Hub: is it reachable, and publishing a run to it (``distill push``)."""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse

TRUE = {"1", "true", "yes", "on"}


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


@functools.cache
def hub_unreachable_reason(timeout: float = 3.0) -> str | None:
    """Why the Hub cannot be used right now, or None. One quick TCP connect instead of the client's
    retry loop, which spends ~25 s before it gives up on a machine without network."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in TRUE:
        return "offline mode (HF_HUB_OFFLINE=1)"
    url = urlparse(endpoint())
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as err:
        return f"cannot connect to {url.scheme}://{url.netloc} ({err.strerror or err})"
    return None
