"""Subtitles: cues that tile a timeline, merged and wrapped, written as SRT, WebVTT and JSON.

    cues = [Cue(0.0, 2.0, "a red circle"), Cue(2.0, 4.0, "a red circle."), Cue(4.0, 6.0, "a blue square")]
    cues = merge_cues(cues)                      # -> 2 cues: 0-4 s and 4-6 s
    write_subtitles(cues, "out/", "clip")        # out/clip.srt, out/clip.vtt, out/clip.json (atomic)

Rules every writer follows (common broadcast limits): at most 42 columns per line (display width: a
Chinese or Japanese character takes two, a combining accent none) and 2 lines per cue; a longer
caption becomes consecutive cues that share its time, each on screen for at least `MIN_CUE_S` (or the
whole cue when that is shorter: what does not fit then ends in '…'). Times are whole milliseconds, and
a cue ends exactly where the next begins, so a tiled input stays tiled: no gaps, no overlaps. A
right-to-left line starts with U+200F (RIGHT-TO-LEFT MARK), so players that lay out every line
left-to-right still put its punctuation on the right side. Caption text is printable: no U+FFFD,
no control characters (`core.text.printable`). SRT and WebVTT are rendered from the same cues, so
they cannot disagree.
"""
from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

from wcwidth import wcwidth

from ..base.errors import ClipPrefixError
from ..base.files import atomic_write_text
from ..core.text import is_rtl, printable

MAX_CHARS = 42      # per line (BBC / Netflix limit for Latin scripts)
MAX_LINES = 2       # per cue
MIN_CUE_S = 1.0     # seconds a cue stays on screen at least (or its whole segment, when shorter)
RLM = "\u200f"      # RIGHT-TO-LEFT MARK: starts right-to-left lines in SRT and WebVTT
EMPTY = "…"         # shown for a caption the model left empty (an empty SRT cue breaks parsers)
FORMATS = ("srt", "vtt", "json")


@dataclass
class Cue:
    start: float                                             # seconds
    end: float                                               # seconds
    text: str
    score: float | None = None                               # the model's score (mean log p for greedy)
    frames: list[float] = field(default_factory=list)        # timestamps (s) of the frames behind the caption
    alternatives: list[dict] = field(default_factory=list)   # further returned captions {"text", "score"}
    parts: list[dict] = field(default_factory=list)          # the segments merged into this cue

    @property
    def start_ms(self) -> int:
        return to_ms(self.start)

    @property
    def end_ms(self) -> int:
        return to_ms(self.end)


# ------------------------------------------------------------------ times
def to_ms(seconds: float) -> int:
    """Seconds -> whole milliseconds (rounded half up: 1.0005 s -> 1001 ms)."""
    if seconds < 0:
        raise ClipPrefixError(f"Subtitle times cannot be negative, got {seconds} s.")
    return int(seconds * 1000 + 0.5 + 1e-9)


def _hms(ms: int, sep: str) -> str:
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def srt_time(seconds: float) -> str:
    """`HH:MM:SS,mmm` (SRT)."""
    return _hms(to_ms(seconds), ",")


def parse_time(text: str) -> float:
    """`HH:MM:SS,mmm` or `HH:MM:SS.mmm` -> seconds."""
    m = re.fullmatch(r"\s*(\d+):(\d\d):(\d\d)[,.](\d{3})\s*", text)
    if not m:
        raise ClipPrefixError(f"'{text}' is not a subtitle time (HH:MM:SS,mmm).")
    h, mi, s, ms = (int(g) for g in m.groups())
    return (h * 3_600_000 + mi * 60_000 + s * 1000 + ms) / 1000


# ------------------------------------------------------------------ text
def clean(text: str) -> str:
    """One line of printable text: controls and U+FFFD removed, whitespace collapsed, '-->' (a cue-timing
    marker) defused, never empty."""
    text = printable(text).replace("-->", "→")
    return text or EMPTY


def display_width(text: str) -> int:
    """Columns `text` takes in a subtitle line: wide (CJK) characters 2, combining marks 0, others 1."""
    return sum(max(0, wcwidth(ch)) for ch in text)


def _split_word(word: str, width: int) -> list[str]:
    """`word` cut into pieces of at most `width` columns (a zero-width mark stays with its letter)."""
    pieces, cur, w = [], "", 0
    for ch in word:
        cw = max(0, wcwidth(ch))
        if cur and cw and w + cw > width:
            pieces.append(cur)
            cur, w = "", 0
        cur, w = cur + ch, w + cw
    return pieces + [cur] if cur or not pieces else pieces


def _greedy(words: list[str], width: int) -> list[str]:
    lines: list[str] = []
    for w in words:
        for piece in _split_word(w, width):          # a word longer than a line (or unspaced CJK) is cut
            if lines and display_width(lines[-1]) + 1 + display_width(piece) <= width:
                lines[-1] += " " + piece
            else:
                lines.append(piece)
    return lines


def _balance(words: list[str], width: int) -> list[str]:
    """Two lines as even as possible (on a tie the shorter on top), if some split keeps both within width."""
    best = None
    for k in range(1, len(words)):
        a, b = " ".join(words[:k]), " ".join(words[k:])
        wa, wb = display_width(a), display_width(b)
        if wa <= width and wb <= width:
            key = (max(wa, wb), wa > wb)
            if best is None or key < best[0]:
                best = (key, [a, b])
    return best[1] if best else _greedy(words, width)


def wrap(text: str, width: int = MAX_CHARS, max_lines: int = MAX_LINES) -> list[list[str]]:
    """Text -> blocks of at most `max_lines` lines of at most `width` columns (one block per cue).

    Short text is one line; text that needs two lines is split evenly; longer text is cut into
    several blocks, each balanced again.
    """
    if width < 1 or max_lines < 1:
        raise ClipPrefixError(f"Subtitle lines need width >= 1 and max_lines >= 1, got {width} and {max_lines}.")
    text = clean(text)
    words = [p for w in text.split(" ") for p in _split_word(w, width)]
    lines = _greedy(words, width)
    blocks = [lines[i:i + max_lines] for i in range(0, len(lines), max_lines)]
    if max_lines >= 2:
        blocks = [_balance(" ".join(b).split(" "), width) if len(b) == 2 else b for b in blocks]
    return blocks


# ------------------------------------------------------------------ cue lists
ARTICLES = {"a", "an", "the"}   # a model's frame-to-frame jitter: 'a red circle' / 'the red circle'


def _norm_words(text: str) -> list[str]:
    return [w for w in re.findall(r"\w+", text.lower()) if w not in ARTICLES]


def similarity(a: str, b: str) -> float:
    """Word-level similarity in [0, 1] of two captions, ignoring case, punctuation and articles."""
    wa, wb = _norm_words(a), _norm_words(b)
    if wa == wb:
        return 1.0
    return difflib.SequenceMatcher(None, wa, wb, autojunk=False).ratio()


def merge_cues(cues: Sequence[Cue], threshold: float | None = 0.85) -> list[Cue]:
    """Merge runs of consecutive cues whose captions are identical or near-identical.

    A run keeps the caption with the best score and spans from its first start to its last end;
    an empty caption joins its neighbour. `threshold` 1.0 merges only identical captions (after
    case and punctuation); None merges nothing, not even empty captions (one cue per input cue).
    """
    out: list[Cue] = []
    for cue in cues:
        part = {"start": cue.start, "end": cue.end, "caption": cue.text, "score": cue.score}
        own = cue.parts or [part]
        prev = out[-1] if out else None
        if prev is not None and threshold is not None and (
                not _norm_words(cue.text) or not _norm_words(prev.text) or similarity(prev.text, cue.text) >= threshold):
            better = not _norm_words(prev.text) or (
                _norm_words(cue.text) and cue.score is not None and (prev.score is None or cue.score > prev.score))
            out[-1] = replace(prev, end=cue.end, frames=prev.frames + list(cue.frames), parts=prev.parts + own,
                              **({"text": cue.text, "score": cue.score, "alternatives": cue.alternatives}
                                 if better else {}))
        else:
            out.append(replace(cue, frames=list(cue.frames), parts=list(own)))
    return out


def tile(cues: Sequence[Cue], start: float | None = None, end: float | None = None) -> list[Cue]:
    """Make cues cover [start, end] exactly: each cue ends where the next begins (cues sorted by start)."""
    cues = sorted(cues, key=lambda c: c.start)
    out = []
    for i, c in enumerate(cues):
        s = start if (i == 0 and start is not None) else c.start
        e = cues[i + 1].start if i + 1 < len(cues) else (end if end is not None else c.end)
        out.append(replace(c, start=s, end=max(s, e)))
    return out


def _join(a: Cue, b: Cue) -> Cue:
    """`a` shown over both spans (b's frames and parts kept with it)."""
    return replace(a, start=min(a.start, b.start), end=max(a.end, b.end), frames=a.frames + b.frames,
                   parts=(a.parts or []) + (b.parts or []))


def hold(cues: Sequence[Cue], seconds: float = MIN_CUE_S, threshold: float = 0.85) -> list[Cue]:
    """Tiled cues, each on screen at least `seconds`: a shorter cue (a flash of another caption) is absorbed
    by the cue before it (the first one by the cue after it), and neighbours at least `threshold` similar
    then merge; the last cue keeps what is left of the timeline."""
    out = sorted((replace(c) for c in cues), key=lambda c: c.start)
    i = 0
    while i < len(out) - 1:
        if out[i].end - out[i].start >= seconds - 1e-9:
            i += 1
            continue
        if i == 0:
            out[0:2] = [_join(out[1], out[0])]
            continue
        out[i - 1:i + 1] = [_join(out[i - 1], out[i])]
        i -= 1
        if i + 1 < len(out):
            pair = merge_cues(out[i:i + 2], threshold)
            if len(pair) == 1:
                out[i:i + 2] = pair
    return out


def _ellipsis(lines: list[str], width: int) -> list[str]:
    """The block with '…' at its end, words dropped from its last line until that fits `width` columns."""
    words = lines[-1].split(" ")
    while len(words) > 1 and display_width(" ".join(words) + EMPTY) > width:
        words.pop()
    last = " ".join(words)
    while last and display_width(last + EMPTY) > width:
        last = last[:-1]
    return lines[:-1] + [last + EMPTY]


def layout(cues: Sequence[Cue], width: int = MAX_CHARS, max_lines: int = MAX_LINES,
           min_seconds: float = MIN_CUE_S) -> list[tuple[int, int, list[str]]]:
    """Cues -> (start_ms, end_ms, lines) display cues within the line limits, still tiling.

    A caption too long for one cue is spread over consecutive cues, each at least `min_seconds` (or the
    whole cue) on screen, the rest of its time shared in proportion to each block's characters
    (boundaries on whole milliseconds, so nothing is lost or overlaps). Blocks that do not fit in that
    time are left out, the last one shown ending in '…'.
    """
    out = []
    prev_end = None
    floor_ms = int(round(min_seconds * 1000))
    for c in cues:
        a, b = c.start_ms, c.end_ms
        if b <= a:
            continue          # zero-length (after rounding) cues are invisible: drop them
        if prev_end is not None and a < prev_end:
            raise ClipPrefixError(f"Subtitle cues overlap at {srt_time(a / 1000)}.")
        blocks = wrap(c.text, width, max_lines)
        fit = max(1, (b - a) // floor_ms) if floor_ms > 0 else len(blocks)
        if len(blocks) > fit:
            blocks = blocks[:fit - 1] + [_ellipsis(blocks[fit - 1], width)]
        sizes = [sum(display_width(line) for line in blk) for blk in blocks]
        base = floor_ms if len(blocks) > 1 else 0
        spare, total, acc = (b - a) - base * len(blocks), sum(sizes) or 1, 0
        cuts = [a]
        for k, s in enumerate(sizes[:-1], 1):
            acc += s
            cuts.append(a + base * k + round(spare * acc / total))
        cuts.append(b)
        for blk, s, e in zip(blocks, cuts[:-1], cuts[1:]):
            if e > s:
                out.append((s, e, blk))
        prev_end = b
    return out


# ------------------------------------------------------------------ formats
def _mark(line: str) -> str:
    return RLM + line if is_rtl(line) else line


def to_srt(cues: Sequence[Cue], width: int = MAX_CHARS, max_lines: int = MAX_LINES) -> str:
    blocks = [f"{i}\n{_hms(s, ',')} --> {_hms(e, ',')}\n" + "\n".join(map(_mark, lines)) + "\n"
              for i, (s, e, lines) in enumerate(layout(cues, width, max_lines), 1)]
    return "\n".join(blocks)


def _vtt_escape(line: str) -> str:
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(cues: Sequence[Cue], width: int = MAX_CHARS, max_lines: int = MAX_LINES) -> str:
    blocks = [f"{_hms(s, '.')} --> {_hms(e, '.')}\n" + "\n".join(_mark(_vtt_escape(x)) for x in lines) + "\n"
              for s, e, lines in layout(cues, width, max_lines)]
    return "WEBVTT\n\n" + "\n".join(blocks)


def to_json(cues: Sequence[Cue], **meta) -> str:
    """`{**meta, "segments": [{index, start, end, start_srt, end_srt, caption, score, frames, ...}]}`.

    `start`/`end` are on the subtitles' clock; with a `start_time` in `meta` (the first frame's time in
    the file) each segment also gets `start_pts`/`end_pts`, the same moments on the file's own clock,
    which is also the clock of `frames`."""
    segments = []
    t0 = meta.get("start_time")
    for i, c in enumerate(cues):
        if c.end_ms <= c.start_ms:
            continue
        seg = {"index": len(segments), "start": c.start_ms / 1000, "end": c.end_ms / 1000,
               "start_srt": _hms(c.start_ms, ","), "end_srt": _hms(c.end_ms, ",")}
        if t0 is not None:
            seg.update(start_pts=round(t0 + c.start_ms / 1000, 6), end_pts=round(t0 + c.end_ms / 1000, 6))
        segments.append({**seg, "caption": c.text, "score": c.score, "frames": [round(t, 6) for t in c.frames],
                         "alternatives": c.alternatives, "parts": c.parts})
    return json.dumps({**meta, "segments": segments}, indent=2, ensure_ascii=False) + "\n"


def parse_srt(text: str) -> list[Cue]:
    """Read SRT text back into cues (multi-line text joined with newlines)."""
    cues = []
    for block in re.split(r"\n\s*\n", text.strip().replace("\r\n", "\n")):
        lines = block.split("\n")
        if len(lines) < 2 or "-->" not in lines[1]:
            raise ClipPrefixError(f"Malformed SRT block: {block[:60]!r}.")
        a, b = lines[1].split("-->")
        cues.append(Cue(parse_time(a), parse_time(b), "\n".join(lines[2:])))
    return cues


def render(cues: Sequence[Cue], fmt: str, *, width: int = MAX_CHARS, max_lines: int = MAX_LINES, **meta) -> str:
    if fmt == "srt":
        return to_srt(cues, width, max_lines)
    if fmt == "vtt":
        return to_vtt(cues, width, max_lines)
    if fmt == "json":
        return to_json(cues, **meta)
    raise ClipPrefixError(f"Unknown subtitle format '{fmt}'; choose from {', '.join(FORMATS)}.")


def write_subtitles(cues: Sequence[Cue], out_dir: str | Path, stem: str, formats: Iterable[str] = FORMATS,
                    **meta) -> dict[str, Path]:
    """Write `<out_dir>/<stem>.<fmt>` for each format, atomically; everything is rendered before the
    first file is written, so a bad cue list writes nothing."""
    texts = {fmt: render(cues, fmt, **meta) for fmt in formats}
    return {fmt: atomic_write_text(Path(out_dir) / f"{stem}.{fmt}", text) for fmt, text in texts.items()}
