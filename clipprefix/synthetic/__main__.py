"""`python -m clipprefix.synthetic ROOT`: write the synthetic datasets (all layouts) below ROOT."""
import argparse

from .layouts import make_all

ap = argparse.ArgumentParser(description="Write the synthetic datasets (all layouts) below ROOT.")
ap.add_argument("root")
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--videos", type=int, default=20)
ap.add_argument("--images", type=int, default=28)
a = ap.parse_args()
for name, p in make_all(a.root, a.seed, n_videos=a.videos, n_images=a.images).items():
    print(f"{name:10s} {p}")
