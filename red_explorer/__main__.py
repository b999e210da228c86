"""``python -m red_explorer``: the command-line interface."""

from .cli import main

raise SystemExit(main())
