"""The command line: red-explorer (or python -m red_explorer) train | ablate | generate | merge | bench."""
