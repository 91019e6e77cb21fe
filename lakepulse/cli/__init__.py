"""``lakepulse``: what operators do by hand. Each command says what it did and what to do next.

One module per command group; importing them registers their commands on :data:`main`, the
console entry point (``lakepulse = "lakepulse.cli:main"``)."""

from lakepulse.cli import demo, explore, lifecycle, pipeline, predict, serving, triggers
from lakepulse.cli.app import main

__all__ = ["demo", "explore", "lifecycle", "main", "pipeline", "predict", "serving", "triggers"]
