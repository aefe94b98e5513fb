"""Hugging Face Hub access: downloads with a one-sentence error when they cannot happen.

Weights come from the Hub on first use and stay in the Hub cache (`HF_HOME`), so later runs work
offline with `HF_HUB_OFFLINE=1`.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import ClipPrefixError


def offline_message(what: str, exc: BaseException | None = None) -> str:
    """One sentence: what was needed, and the three ways to provide it."""
    why = f" ({type(exc).__name__})" if exc is not None else ""
    mode = " HF_HUB_OFFLINE is set, so nothing is downloaded;" if os.environ.get("HF_HUB_OFFLINE") else ""
    return (f"Could not get {what}{why}:{mode} connect to the internet once to fill the Hugging Face cache "
            f"(HF_HOME, default ~/.cache/huggingface), or pass a local path instead.")


def hub_file(repo_id: str, filename: str, *, revision: str | None = None) -> Path:
    """Local path of `filename` in hub repo `repo_id`, downloading it into the HF cache if needed."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision))
    except Exception as e:  # noqa: BLE001 - any hub/network failure becomes the one-sentence error
        raise ClipPrefixError(offline_message(f"{filename} from the Hugging Face Hub repo {repo_id}", e)) from e


def hub_snapshot(repo_id: str, *, revision: str | None = None, allow_patterns=None) -> Path:
    """Local folder with a snapshot of hub repo `repo_id` (a checkpoint folder)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=allow_patterns))
    except Exception as e:  # noqa: BLE001
        raise ClipPrefixError(offline_message(f"the checkpoint {repo_id} from the Hugging Face Hub", e)) from e
