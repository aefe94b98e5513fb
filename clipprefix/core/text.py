"""Caption text: token ids -> printable text, never U+FFFD or control characters.

    decode_text(tokenizer, ids)     # the tokenizer's own decoding, incomplete last character dropped
    printable("a\\x07 cat\\ufffd")   # 'a cat': controls, bidi/format characters and U+FFFD removed

A byte-level BPE (GPT-2) can stop inside a multi-byte character; its decoder then ends the text with
U+FFFD, which is dropped, as are U+FFFD elsewhere (bytes that form no character), C0/C1 controls
(whitespace ones become spaces) and format characters (bidi overrides, zero-width spaces, BOM) except
ZWNJ and ZWJ, which Persian, Indic scripts and emoji sequences need.
"""
from __future__ import annotations

import unicodedata
from typing import Sequence

_JOINERS = {"\u200c", "\u200d"}   # zero-width non-joiner and joiner: part of the spelling, not formatting


def printable(text: str) -> str:
    """`text` without U+FFFD, control and format characters, whitespace collapsed to single spaces."""
    out = []
    for ch in str(text):
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Zl", "Zp"):
            out.append(" ")
        elif ch != "\ufffd" and cat != "Cs" and (cat != "Cf" or ch in _JOINERS):
            out.append(ch)
    return " ".join("".join(out).split())


def decode_text(tokenizer, tokens: Sequence[int]) -> str:
    """Decode as the tokenizer does (its own clean-up setting: transformers 5 declines the space clean-up for
    BPE tokenizers, with a warning, as destructive), without an incomplete last character, printable."""
    text = tokenizer.decode(list(tokens), skip_special_tokens=True)
    return printable(text.rstrip("\ufffd"))


def is_rtl(text: str) -> bool:
    """Whether the first strongly directional character is right-to-left (Arabic, Hebrew, ...)."""
    for ch in text:
        d = unicodedata.bidirectional(ch)
        if d in ("R", "AL"):
            return True
        if d == "L":
            return False
    return False
