"""Hugging Face Hub access: downloads with a one-sentence error when they cannot happen.

Weights come from the Hub on first use and stay in the Hub cache (`HF_HOME`), so later runs work
offline with `HF_HUB_OFFLINE=1`.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from huggingface_hub import constants, hf_hub_download, snapshot_download, try_to_load_from_cache

from .errors import ClipPrefixError


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE asks for no downloads (1/true/yes/on, as huggingface_hub reads it)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def offline_message(what: str, exc: BaseException | None = None) -> str:
    """One sentence: what was needed, and the three ways to provide it."""
    why = f" ({type(exc).__name__})" if exc is not None else ""
    mode = " HF_HUB_OFFLINE is set, so nothing is downloaded;" if hub_offline() else ""
    return (f"Could not get {what}{why}:{mode} connect to the internet once to fill the Hugging Face cache "
            f"(HF_HOME, default ~/.cache/huggingface), or pass a local path instead.")


@contextlib.contextmanager
def _reachable_or_raise(what: str):
    """Fail at once when the Hub's host does not even resolve (huggingface_hub would retry for ~20 s,
    printing a warning per try), and keep its retry chatter out of the user's terminal otherwise."""
    if not hub_offline():
        host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
        try:
            socket.getaddrinfo(host, 443)
        except OSError as e:
            raise ClipPrefixError(offline_message(what, e)) from e
    log = logging.getLogger("huggingface_hub")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def hub_file(repo_id: str, filename: str, *, revision: str | None = None, token: str | bool | None = None,
             cache_dir: str | os.PathLike | None = None) -> Path:
    """Local path of `filename` in hub repo `repo_id`, downloading it into the HF cache if needed."""
    cached = try_to_load_from_cache(repo_id, filename, revision=revision, cache_dir=cache_dir)
    if isinstance(cached, str) and os.path.isfile(cached):
        return Path(cached)
    what = f"{filename} from the Hugging Face Hub repo {repo_id}"
    with _reachable_or_raise(what):
        try:
            return Path(hf_hub_download(repo_id, filename, revision=revision, token=token, cache_dir=cache_dir))
        except Exception as e:  # noqa: BLE001 - any hub/network failure becomes the one-sentence error
            raise ClipPrefixError(offline_message(what, e)) from e


def hub_snapshot(repo_id: str, *, revision: str | None = None, allow_patterns=None, token: str | bool | None = None,
                 cache_dir: str | os.PathLike | None = None) -> Path:
    """Local folder with a snapshot of hub repo `repo_id` (a checkpoint folder); `revision` (a branch, tag
    or commit), `token` (private repos) and `cache_dir` (instead of HF_HOME's) go to huggingface_hub."""
    what = f"the checkpoint {repo_id} from the Hugging Face Hub"
    kw = {"revision": revision, "allow_patterns": allow_patterns, "token": token, "cache_dir": cache_dir}
    try:   # a complete earlier download works offline
        return Path(snapshot_download(repo_id, local_files_only=True, **kw))
    except Exception:  # noqa: BLE001 - not cached (or partly): download below
        pass
    with _reachable_or_raise(what):
        try:
            return Path(snapshot_download(repo_id, **kw))
        except Exception as e:  # noqa: BLE001
            raise ClipPrefixError(offline_message(what, e)) from e


def from_hub(loader, name: str, what: str, **hub):
    """`loader(name, **hub)` (a transformers `from_pretrained`; `hub`: token=, cache_dir=), from the local
    cache when it is there."""
    hub = {k: v for k, v in hub.items() if v is not None}
    try:
        return loader(name, local_files_only=True, **hub)
    except OSError:
        pass
    with _reachable_or_raise(what):
        try:
            return loader(name, **hub)
        except OSError as e:
            raise ClipPrefixError(offline_message(what, e)) from e
