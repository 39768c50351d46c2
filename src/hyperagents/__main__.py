"""``python -m hyperagents``: the command line."""

from hyperagents.cli import main

main()
