"""Synthetic data and the tiny preset's builders (tests, CI, the demo, notebooks' smoke mode)."""
from .layouts import *  # noqa: F401,F403
from .layouts import STILLS, MOTIONS, caption_parts, all_captions, draw_still, motion_frames, write_mp4  # noqa: F401
