"""Data in: video decoding and frame sampling (PyAV), dataset readers (MSR-VTT, COCO Karpathy, Flickr30k,
a user's folder), and CLIP feature caches (format, writer, extraction)."""
