"""``python -m red_explorer``: the command-line interface."""

from red_explorer.cli.main import main

raise SystemExit(main())
