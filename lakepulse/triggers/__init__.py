"""Triggers: definitions (``dbt_project/triggers.yml``), firings, and their delivery."""
