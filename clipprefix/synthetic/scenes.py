"""What the synthetic data shows, and the captions that say it.

A still is one or two shapes (colour, shape, position, count); a motion is one shape moving across the
frame in one of four directions, so that the direction can be told only from frame order. Every scene
has a canonical caption and paraphrases; `caption_parts` reads the attributes back from any caption.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

COLOURS = {"red": (220, 45, 45), "green": (45, 190, 70), "blue": (55, 95, 235), "yellow": (235, 215, 45)}
SHAPES = ("circle", "square", "triangle")
POSITIONS = ("left", "right", "top", "bottom")
COUNTS = (1, 2)
DIRECTIONS = ("left to right", "right to left", "top to bottom", "bottom to top")

_AT = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom"}
_AT_SIDE = {"left": "on the left side", "right": "on the right side",
            "top": "at the top of the image", "bottom": "at the bottom of the image"}
_TOWARD = {"left to right": "to the right", "right to left": "to the left",
           "top to bottom": "downwards", "bottom to top": "upwards"}

# Paraphrases after the canonical caption. Fields: det (a/two), one (one/two), be (is/are), c, n (noun).
_IMAGE_TEMPLATES = (
    "there {be} {det} {c} {n} {at}",
    "a picture of {det} {c} {n} {at}",
    "{one} {c} {n} {side}",
    "an image with {det} {c} {n} {at}",
    "{det} {c} {n} {be} {side}",
    "{det} {n} in {c} {at}",
    "{det} {c} {n} drawn {at}",
    "a grey background with {det} {c} {n} {at}",
)
_VIDEO_TEMPLATES = (
    "a {c} {s} slides from {a} to {b}",
    "a {c} {s} travels from {a} to {b}",
    "a {c} {s} goes from {a} to {b}",
    "a {c} {s} glides from {a} to {b}",
    "a {c} {s} drifts from {a} to {b}",
    "a {c} {s} is moving from {a} to {b}",
    "a {c} {s} is sliding from {a} to {b}",
    "the {c} {s} moves from {a} to {b}",
    "there is a {c} {s} moving from {a} to {b}",
    "a video of a {c} {s} moving from {a} to {b}",
    "a {c} {s} crosses the screen from {a} to {b}",
    "a {c} {s} moves across the frame from {a} to {b}",
    "a small {c} {s} moves from {a} to {b}",
    "a {s} in {c} moves from {a} to {b}",
    "a {c} {s} moves {toward}",
    "a {c} {s} slides {toward}",
    "a {c} {s} is moving {toward}",
    "a {c} {s} goes {toward}",
    "a {c} {s} travels {toward}",
    "a {c} {s} starts {pa} and ends {pb}",
    "a {c} {s} starts {pa} and moves {toward}",
)
IMAGE_CAPTIONS_PER_ITEM = 5   # as COCO / Flickr30k
VIDEO_CAPTIONS_PER_ITEM = 20  # as MSR-VTT


# ------------------------------------------------------------------ what is drawn, and its captions
@dataclass(frozen=True)
class Still:
    """One or two shapes of one kind and colour in one region of the image."""
    colour: str
    shape: str
    position: str
    count: int = 1

    def _fields(self) -> dict:
        two = self.count == 2
        return dict(det="two" if two else "a", one="two" if two else "one", be="are" if two else "is",
                    c=self.colour, n=self.shape + ("s" if two else ""), at=_AT[self.position],
                    side=_AT_SIDE[self.position])

    def caption(self) -> str:
        """The canonical caption, e.g. 'a red circle on the left', 'two blue squares at the top'."""
        return "{det} {c} {n} {at}".format(**self._fields())

    def captions(self, rng: np.random.Generator | None = None, n: int = IMAGE_CAPTIONS_PER_ITEM) -> list[str]:
        """The canonical caption first, then `n - 1` paraphrases (chosen by `rng`, else the first ones)."""
        picks = _pick(len(_IMAGE_TEMPLATES), n - 1, rng)
        return [self.caption()] + [_IMAGE_TEMPLATES[i].format(**self._fields()) for i in picks]


@dataclass(frozen=True)
class Motion:
    """One shape moving across the frame along one of `DIRECTIONS`."""
    colour: str
    shape: str
    direction: str

    def _fields(self) -> dict:
        a, b = self.direction.split(" to ")
        return dict(c=self.colour, s=self.shape, a=a, b=b, toward=_TOWARD[self.direction], pa=_AT[a], pb=_AT[b])

    def caption(self) -> str:
        """The canonical caption, e.g. 'a red circle moves from left to right'."""
        return "a {c} {s} moves from {a} to {b}".format(**self._fields())

    def captions(self, rng: np.random.Generator | None = None, n: int = VIDEO_CAPTIONS_PER_ITEM) -> list[str]:
        picks = _pick(len(_VIDEO_TEMPLATES), n - 1, rng)
        return [self.caption()] + [_VIDEO_TEMPLATES[i].format(**self._fields()) for i in picks]


def _pick(n_templates: int, k: int, rng: np.random.Generator | None) -> list[int]:
    k = max(0, min(k, n_templates))
    if rng is None:
        return list(range(k))
    return sorted(rng.choice(n_templates, size=k, replace=False).tolist())


STILLS = tuple(Still(c, s, p, n) for c in COLOURS for s in SHAPES for p in POSITIONS for n in COUNTS)
MOTIONS = tuple(Motion(c, s, d) for c in COLOURS for s in SHAPES for d in DIRECTIONS)


def all_captions() -> list[str]:
    """Every caption string the generator can write (sorted, unique): the tiny tokenizer trains on these."""
    out = set()
    for st in STILLS:
        out.update(st.captions(None, 1 + len(_IMAGE_TEMPLATES)))
    for mo in MOTIONS:
        out.update(mo.captions(None, 1 + len(_VIDEO_TEMPLATES)))
    return sorted(out)


_WORDS = re.compile(r"[a-z]+")


def caption_parts(caption: str) -> dict:
    """Read the attributes back from any caption (ours or a model's): colour, shape, count, position,
    direction; None where the caption does not say (or says two different things)."""
    words = _WORDS.findall(caption.lower())
    colours = {w for w in words if w in COLOURS}
    shapes = {w.rstrip("s") for w in words if w.rstrip("s") in SHAPES}
    plural = any(w in {s + "s" for s in SHAPES} for w in words)
    text = " ".join(words)
    direction = None
    m = re.search(r"\bfrom (left|right|top|bottom) to (left|right|top|bottom)\b", text)
    if m and f"{m.group(1)} to {m.group(2)}" in DIRECTIONS:
        direction = f"{m.group(1)} to {m.group(2)}"
    else:
        m = re.search(r"\bstarts (?:on|at) the (left|right|top|bottom)\b", text)
        for d, toward in _TOWARD.items():
            if re.search(rf"\b{toward}\b", text) or (m and d.startswith(m.group(1) + " ")):
                direction = d
                break
    places = {w for w in words if w in POSITIONS}
    return {
        "colour": colours.pop() if len(colours) == 1 else None,
        "shape": next(iter(shapes)) if len(shapes) == 1 else None,
        "count": (2 if ("two" in words or plural) else 1) if shapes else None,
        "position": places.pop() if direction is None and len(places) == 1 else None,
        "direction": direction,
    }
