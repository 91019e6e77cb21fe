"""Runs a great-expectations suite on a DataFrame and returns a plain, serialisable result."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas comes with great-expectations when a suite runs
    import pandas as pd

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")


@dataclass
class ExpectationOutcome:
    expectation: str
    column: str | None
    success: bool
    unexpected_count: int
    sample: list[Any] = field(default_factory=list)


@dataclass
class QualityResult:
    suite: str
    rows_checked: int
    success: bool
    outcomes: list[ExpectationOutcome]

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def summary(self) -> str:
        if self.success:
            return f"{self.suite}: all {len(self.outcomes)} expectations met on {self.rows_checked} rows"
        return f"{self.suite}: " + "; ".join(
            f"{o.expectation}({o.column or ''}) failed on {o.unexpected_count} rows"
            for o in self.failures
        )


@functools.cache
def _context():
    """One ephemeral great-expectations context per process, with its pandas source: making
    one costs ~1 s, and the pipeline worker checks every load, every few seconds."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.data_sources.add_pandas("lakepulse")
    return context


@functools.cache
def _batch_definition(name: str):
    """The whole-DataFrame batch of suite ``name`` in that context."""
    source = _context().data_sources.get("lakepulse")
    return source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")


_LOCK = threading.Lock()
"""The context serves one validation at a time (the worker's cycle, a check in Dagster)."""


def run_suite(name: str, expectations: Callable[[], list], df: pd.DataFrame) -> QualityResult:
    """Validate ``df`` against the expectations built by ``expectations()``."""
    import great_expectations as gx

    with _LOCK:
        suite = gx.ExpectationSuite(name=name, expectations=expectations())
        result = (
            _batch_definition(name)
            .get_batch(batch_parameters={"dataframe": df})
            .validate(
                suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5}
            )
        )
    outcomes = []
    for item in result.results:
        config = item.expectation_config
        kwargs = config.kwargs
        outcomes.append(
            ExpectationOutcome(
                expectation=config.type,
                column=kwargs.get("column") or ",".join(kwargs.get("column_list", [])) or None,
                success=bool(item.success),
                unexpected_count=int(item.result.get("unexpected_count") or 0),
                sample=[_plain(v) for v in item.result.get("partial_unexpected_list") or []],
            )
        )
    return QualityResult(name, len(df), bool(result.success), outcomes)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)
