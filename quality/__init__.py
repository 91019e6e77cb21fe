"""Data-quality suites (great-expectations 1.x) as code, one module per table family, and a
runner that returns a structured result Dagster asset checks report."""
