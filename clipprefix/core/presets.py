"""Named presets: training configs (`configs/*.json`) and ready checkpoints (`configs/checkpoints.json`).

    new_config("clipcap-transformer")             # a config to train from (see training/)
    resolve("clipcap-coco")                       # a checkpoint folder: downloaded + converted once, cached
    resolve("runs/x/best"), resolve("me/my-captioner")   # a folder, or a Hugging Face Hub id

Configs are small JSON files beside this module, as open_clip keeps its model configs, checked when read:
`clip`, `mapper`, `lm`, `tokenizer`, `generation` (a dict, or the name of `generation.NAMED` defaults),
optionally `frames` (video configs), `kit` (built from local code, see `registry.py`) and `recipe` (the
trainer's defaults for this config: lr, train_lm, threads). Checkpoint presets resolve to a folder under
`paths.cache_dir()/presets/<name>`, built on first use.
"""
from __future__ import annotations

import copy
import functools
import json
import os
import re
from pathlib import Path

from ..base.errors import ClipPrefixError
from ..base.files import build_lock, recover_folder
from ..base.hub import hub_file, hub_snapshot
from ..base.paths import cache_dir
from . import registry
from .convert import convert_file
from .generation import GenerationConfig, named_or_dict
from .mappers import MapperConfig

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
_SECTIONS = {"clip": dict, "mapper": dict, "lm": dict, "tokenizer": dict}
_OPTIONAL = {"description": str, "frames": dict, "kit": str, "recipe": dict, "generation": (dict, str)}
_RECIPE_KEYS = {"lr", "train_lm", "threads"}
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def _check_config(name: str, cfg) -> dict:
    """`cfg` as read from configs/<name>.json, or one sentence naming what is wrong in it."""
    where = CONFIG_DIR / f"{name}.json"
    if not isinstance(cfg, dict):
        raise ClipPrefixError(f"{where} must hold a JSON object.")
    unknown = set(cfg) - set(_SECTIONS) - set(_OPTIONAL)
    if unknown:
        raise ClipPrefixError(f"{where} has unknown entries {', '.join(sorted(unknown))}.")
    for key, kind in {**_SECTIONS, **_OPTIONAL}.items():
        if key in cfg and not isinstance(cfg[key], kind):
            raise ClipPrefixError(f"{where}: '{key}' must be a JSON {getattr(kind, '__name__', 'object or name')}.")
    missing = set(_SECTIONS) - set(cfg)
    if missing:
        raise ClipPrefixError(f"{where} lacks {', '.join(sorted(missing))}.")
    bad = set(cfg["mapper"]) - set(MapperConfig.__dataclass_fields__)
    if bad:
        raise ClipPrefixError(f"{where}: the mapper has unknown fields {', '.join(sorted(bad))}.")
    if set(cfg.get("recipe", {})) - _RECIPE_KEYS:
        raise ClipPrefixError(f"{where}: the recipe takes only {', '.join(sorted(_RECIPE_KEYS))}.")
    if "kit" in cfg and not registry.is_kit(cfg["kit"]):
        raise ClipPrefixError(f"{where} names an unknown local kit '{cfg['kit']}'.")
    GenerationConfig.from_dict(named_or_dict(cfg.get("generation"))).validate()
    return cfg


@functools.lru_cache(maxsize=1)
def _configs() -> dict[str, dict]:
    out = {}
    for p in sorted(CONFIG_DIR.glob("*.json")):
        if p.stem != "checkpoints":
            out[p.stem] = _check_config(p.stem, json.loads(p.read_text(encoding="utf-8")))
    return out


@functools.lru_cache(maxsize=1)
def _checkpoints() -> dict[str, dict]:
    presets = json.loads((CONFIG_DIR / "checkpoints.json").read_text(encoding="utf-8"))
    for name, p in presets.items():
        build = p.get("build", {})
        if not isinstance(p.get("description"), str) or not ({"kit", "config"} <= set(build) or "convert" in build):
            raise ClipPrefixError(f"{CONFIG_DIR / 'checkpoints.json'}: preset '{name}' needs a description and a "
                                  "build with a kit and config, or a conversion.")
    return presets


def config_names() -> list[str]:
    return list(_configs())


def checkpoint_presets() -> dict[str, str]:
    """Preset name -> one-line description."""
    return {name: p["description"] for name, p in _checkpoints().items()}


def recipe(init: str) -> dict:
    """The trainer's defaults for a config name (lr, train_lm, threads); GPT-2's lr for anything else."""
    return {"lr": 2e-5, "train_lm": None, "threads": None, **_configs().get(init, {}).get("recipe", {})}


def new_config(name: str, **mapper_overrides) -> dict:
    """A copy of config `name`, mapper fields overridden by keyword, generation spelled out."""
    configs = _configs()
    if name not in configs:
        raise ClipPrefixError(f"Unknown config '{name}'; choose one of {', '.join(configs)}.")
    cfg = copy.deepcopy(configs[name])
    cfg.pop("description", None)
    cfg.pop("recipe", None)
    cfg["generation"] = named_or_dict(cfg.get("generation"))
    cfg["mapper"].update({k: v for k, v in mapper_overrides.items() if v is not None})
    if "kit" in cfg:
        cfg["clip"]["source"] = str(registry.kit(cfg["kit"]).clip_dir())
        cfg["clip"]["spec_name"] = registry.clip_name(cfg["kit"])   # the name ClipEncoder.load(kit) records
    return cfg


def _build(name: str, target: Path, **hub) -> None:
    build = _checkpoints()[name]["build"]
    if "kit" in build:     # any further entries (e.g. "trained": true) are the kit's build options
        options = {k: v for k, v in build.items() if k not in ("kit", "config")}
        registry.kit(build["kit"]).build_checkpoint(build["config"], target, **options)
    else:
        convert_file(hub_file(build["repo_id"], build["filename"], **hub), target, kind=build["convert"],
                     clip_model=build["clip_model"], clip_pretrained=build["clip_pretrained"])


def resolve_preset(name: str, **hub) -> Path:
    """The local checkpoint folder of preset `name`, built (or downloaded and converted) on first use
    (`hub`: token=, cache_dir= for the download)."""
    presets = _checkpoints()
    if name not in presets:
        raise ClipPrefixError(f"Unknown preset '{name}'; choose one of {', '.join(presets)}.")
    kit = presets[name]["build"].get("kit")
    tag = f"{name}-{registry.kit(kit).VERSION}" if kit else name
    target = cache_dir() / "presets" / tag
    if not (target / "config.json").is_file():
        with build_lock(target):          # a concurrent first use waits for this build instead of repeating it
            if not (target / "config.json").is_file():
                _build(name, target, **hub)
    return target


def resolve(name_or_path: str | os.PathLike, *, revision: str | None = None, token: str | bool | None = None,
            cache_dir: str | os.PathLike | None = None) -> Path:
    """A local checkpoint folder for a folder path, a preset name or a Hugging Face Hub id; `revision`,
    `token` and `cache_dir` go to huggingface_hub (`revision` only means something for a Hub id)."""
    p = Path(name_or_path).expanduser()
    recover_folder(p)
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise ClipPrefixError(f"{p} is not a clipprefix checkpoint: it has no config.json.")
        return p
    if p.exists():
        raise ClipPrefixError(f"{p} is a file, but a checkpoint is a folder (for a ClipCap .pt file run `clipprefix convert`).")
    name = str(name_or_path)
    if name in _checkpoints():
        return resolve_preset(name, token=token, cache_dir=cache_dir)
    if _HUB_ID.match(name):
        return hub_snapshot(name, revision=revision, token=token, cache_dir=cache_dir)
    raise ClipPrefixError(f"No checkpoint '{name}': it is not a folder, a preset ({', '.join(_checkpoints())}) "
                          "or a Hub id (owner/name).")
