"""One module per `clipprefix` command: `HELP`, `add_arguments(parser)`, `run(args) -> exit code`."""
