"""What users run: the `clipprefix` CLI (one module per command in `commands/`), image and video
captioning, subtitles, rendering, live captioning, the notebook widgets and displays, and the demo."""
