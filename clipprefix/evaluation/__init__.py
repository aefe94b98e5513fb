"""Scoring captioners: caption metrics as the field computes them (pycocoevalcap), CLIPScore, evaluation
runs over a feature cache, and qualitative galleries."""
