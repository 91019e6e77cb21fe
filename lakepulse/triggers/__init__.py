"""Triggers defined as data (triggers.yml), fired exactly once, written back as events."""
