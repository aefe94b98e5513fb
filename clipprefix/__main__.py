"""`python -m clipprefix <command>`: the CLI."""
from .apps.cli import main

raise SystemExit(main())
