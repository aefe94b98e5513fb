"""The thin library: mapping networks, the LM input, the model and its loss, decoding (greedy, beam,
sampling) with its KV cache, the CLIP encoder, checkpoints and the published formats, presets, and
`Captioner`. It imports only `base` and `fast`."""
