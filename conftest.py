"""Repository-wide test set-up: nothing in the test suite (notebooks included) touches the network.

Set before any test module or notebook kernel starts, so Hugging Face libraries fail fast offline
instead of trying to download, and notebooks run in smoke mode (tiny preset, tiny data).
"""
import os

os.environ["HF_HUB_OFFLINE"] = "1"          # forced, not defaulted: an exported HF_HUB_OFFLINE=0 must not let tests out
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("CLIPPREFIX_SMOKE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
