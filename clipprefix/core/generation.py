"""`GenerationConfig`: how to decode (strategy, lengths, sampling, repetition controls, stops), validated.

    GenerationConfig(strategy="beam", num_beams=5).validate()
    CLIPCAP                                      # ClipCap's own settings (greedy, 67 tokens, stop at ".")
    GenerationConfig.from_dict(config["generation"])   # a checkpoint's defaults
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from ..base.errors import ClipPrefixError

STRATEGIES = ("greedy", "beam", "sample")


@dataclass
class GenerationConfig:
    strategy: str = "greedy"
    max_new_tokens: int = 30
    min_new_tokens: int = 0
    num_beams: int = 5
    length_penalty: float = 1.0        # beam score = sum log p / length ** length_penalty
    num_return_sequences: int = 1
    temperature: float = 1.0
    top_k: int = 0                     # 0: off
    top_p: float = 1.0                 # 1.0: off
    seed: int | None = None
    repetition_penalty: float = 1.0    # 1.0: off (CTRL-style, as in transformers)
    no_repeat_ngram_size: int = 0      # 0: off
    stop_strings: tuple[str, ...] = field(default_factory=tuple)
    stop_at_eos: bool = True

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stop_strings"] = list(self.stop_strings)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "GenerationConfig":
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "stop_strings" in d:
            d["stop_strings"] = tuple(d["stop_strings"] or ())
        return cls(**d)

    def updated(self, **overrides) -> "GenerationConfig":
        """A copy with the non-None overrides applied (CLI flags, keyword arguments), read as transformers'
        `generate` reads them when no `strategy` is given: `num_beams=5` means beam search (`num_beams=1`
        undoes a beam default), `do_sample=True` sampling and `do_sample=False` greedy (beam with
        `num_beams` > 1). An unknown name is one sentence listing the known ones."""
        overrides = {k: v for k, v in overrides.items() if v is not None}
        do_sample = overrides.pop("do_sample", None)
        unknown = sorted(set(overrides) - set(self.__dataclass_fields__))
        if unknown:
            raise ClipPrefixError(f"Unknown decoding option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                                  f"known: {', '.join(self.__dataclass_fields__)}, do_sample.")
        beams = overrides.get("num_beams")
        if "strategy" in overrides:
            if do_sample is not None and bool(do_sample) != (overrides["strategy"] == "sample"):
                raise ClipPrefixError(f"do_sample={do_sample} contradicts strategy='{overrides['strategy']}'; "
                                      "give one of the two.")
        elif do_sample is not None:
            overrides["strategy"] = "sample" if do_sample else ("beam" if (beams or 1) > 1 else "greedy")
        elif beams is not None and beams > 1:
            overrides["strategy"] = "beam"
        elif beams == 1 and self.strategy == "beam":
            overrides["strategy"] = "greedy"
        if "stop_strings" in overrides:
            overrides["stop_strings"] = tuple(overrides["stop_strings"])
        return replace(self, **overrides)

    def validate(self) -> "GenerationConfig":
        def bad(msg):
            raise ClipPrefixError(msg)
        if self.strategy not in STRATEGIES:
            bad(f"Unknown decoding strategy '{self.strategy}'; choose one of {', '.join(STRATEGIES)}.")
        if self.max_new_tokens < 1:
            bad(f"max_new_tokens must be at least 1, got {self.max_new_tokens}.")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            bad(f"min_new_tokens must be between 0 and max_new_tokens ({self.max_new_tokens}), got {self.min_new_tokens}.")
        if self.temperature <= 0:
            bad(f"temperature must be positive, got {self.temperature}.")
        if self.top_k < 0 or not 0 < self.top_p <= 1:
            bad(f"top_k must be >= 0 and top_p in (0, 1], got top_k={self.top_k}, top_p={self.top_p}.")
        if self.repetition_penalty <= 0 or self.no_repeat_ngram_size < 0:
            bad("repetition_penalty must be positive and no_repeat_ngram_size non-negative.")
        if self.strategy == "beam" and self.num_beams < 1:
            bad(f"num_beams must be at least 1, got {self.num_beams}.")
        limit = self.num_beams if self.strategy == "beam" else (1 if self.strategy == "greedy" else 10**6)
        if not 1 <= self.num_return_sequences <= limit:
            bad(f"num_return_sequences must be between 1 and {limit} for {self.strategy} decoding, "
                f"got {self.num_return_sequences}.")
        return self


@dataclass
class Sequence_:
    tokens: list[int]
    logprobs: list[float]          # log p of each token under the model (after repetition controls)
    score: float                   # beam: length-normalised sum; otherwise mean log p


CLIPCAP = GenerationConfig(strategy="greedy", max_new_tokens=67, stop_strings=(".",))   # ClipCap's generate2
NAMED = {"clipcap": CLIPCAP}       # configs may name these instead of spelling them out


def named_or_dict(value) -> dict:
    """A checkpoint's `generation` entry as a dict: a name from `NAMED` or the dict itself."""
    if isinstance(value, str):
        if value not in NAMED:
            raise ClipPrefixError(f"Unknown generation defaults '{value}'; choose one of {', '.join(NAMED)} or give a dict.")
        return NAMED[value].to_dict()
    return dict(value or {})
