"""lakepulse: real-time commerce analytics on a lakehouse."""

__version__ = "0.1.0"
