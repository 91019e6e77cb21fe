"""``python -m lakepulse.cli``: the same commands as the ``lakepulse`` entry point."""

from lakepulse.cli import main

main()
