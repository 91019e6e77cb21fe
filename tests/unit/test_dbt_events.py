"""The worker's dbt skips the events no logger writes (``skip_unlogged_events``), and still
writes every one a logger wants."""

from __future__ import annotations

import io

import pytest

from lakepulse.warehouse.dbt import skip_unlogged_events


@pytest.fixture
def manager(monkeypatch):
    """The filtering manager installed, with the messages it built recorded."""
    from dbt_common.events import event_manager, event_manager_client

    previous = event_manager_client.get_event_manager()
    skip_unlogged_events()
    installed = event_manager_client.get_event_manager()
    skip_unlogged_events()  # idempotent: the same manager stays
    assert event_manager_client.get_event_manager() is installed
    built: list[str] = []
    build = event_manager.msg_from_base_event

    def recording(event, level=None):
        built.append(event.msg)
        return build(event, level=level)

    monkeypatch.setattr(event_manager, "msg_from_base_event", recording)
    installed.built = built
    yield installed
    event_manager_client.ctx_set_event_manager(previous)


def logger_at(manager, level, name: str) -> io.StringIO:
    from dbt_common.events.logger import LineFormat, LoggerConfig

    stream = io.StringIO()
    config = LoggerConfig(
        name=name, level=level, line_format=LineFormat.PlainText, output_stream=stream
    )
    manager.add_logger(config)
    return stream


def test_an_event_below_every_loggers_level_is_never_built(manager):
    from dbt_common.events.base_types import EventLevel
    from dbt_common.events.functions import fire_event
    from dbt_common.events.types import Note

    info = logger_at(manager, EventLevel.INFO, "lakepulse-test-info")
    fire_event(Note(msg="a statement"), level=EventLevel.DEBUG)
    fire_event(Note(msg="a node done"), level=EventLevel.INFO)
    fire_event(Note(msg="a warning"), level=EventLevel.WARN)
    written = info.getvalue()
    assert "a node done" in written and "a warning" in written
    assert "a statement" not in written
    assert manager.built == ["a node done", "a warning"]


def test_a_debug_logger_still_gets_every_debug_event(manager):
    from dbt_common.events.base_types import EventLevel
    from dbt_common.events.functions import fire_event
    from dbt_common.events.types import Note

    info = logger_at(manager, EventLevel.INFO, "lakepulse-test-info-2")
    debug = logger_at(manager, EventLevel.DEBUG, "lakepulse-test-debug")
    fire_event(Note(msg="a statement"), level=EventLevel.DEBUG)
    assert "a statement" in debug.getvalue()
    assert "a statement" not in info.getvalue()
    assert manager.built == ["a statement"]
