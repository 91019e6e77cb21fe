"""Dagster code location for lakepulse; the entry point is ``orchestration.definitions``."""
