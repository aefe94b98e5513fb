"""Synthetic data and the tiny preset's builders: images and videos whose captions describe exactly what is
drawn, in the real dataset layouts (tests, CI, the demo, notebooks' smoke mode). Nothing below this layer
imports it; the tiny preset reaches it through `core/registry.py`.

    from clipprefix import synthetic
    synthetic.make_all(root, seed=0)                 # the smoke layouts, seconds on a CPU
    synthetic.make_msrvtt(root, n_train=100)         # one layout at a chosen size
    synthetic.make_video("demo.mp4", n_scenes=4)     # one longer clip with distinct scenes (apps, demo)
    synthetic.all_captions()                         # every caption the generator can write (tokenizer)
"""
from ..data.video_write import write_mp4
from .draw import draw_still, motion_frames, write_image
from .layouts import (Scene, SyntheticItem, SyntheticVideo, make_all, make_coco_karpathy, make_flickr30k, make_msrvtt,
                      make_user_folder, make_video)
from .scenes import (COLOURS, COUNTS, DIRECTIONS, MOTIONS, POSITIONS, SHAPES, STILLS, Motion, Still, all_captions,
                     caption_parts)

__all__ = ["COLOURS", "COUNTS", "DIRECTIONS", "MOTIONS", "POSITIONS", "SHAPES", "STILLS", "Motion", "Scene", "Still",
           "SyntheticItem", "SyntheticVideo", "all_captions", "caption_parts", "draw_still", "make_all",
           "make_coco_karpathy", "make_flickr30k", "make_msrvtt", "make_user_folder", "make_video", "motion_frames",
           "write_image", "write_mp4"]
