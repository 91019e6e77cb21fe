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
    # A manager without loggers, as in a new process: an earlier test's dbt run in this process
    # may have left one with its debug-level file logger, which wants every event built.
    event_manager_client.ctx_set_event_manager(event_manager.EventManager())
    skip_unlogged_events()
    installed = event_manager_client.get_event_manager()
    skip_unlogged_events()  # idempotent: the same manager stays
    assert event_manager_client.get_event_manager() is installed
    built: list[str] = []
    build = event_manager.msg_from_base_event

    def recording(event, level=None):
        built.append(event.msg if hasattr(event, "msg") else type(event).__name__)
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


def test_a_debug_event_no_logger_writes_is_built_only_when_read(manager):
    """Made under an info logger, a debug event's protobuf message is not parsed at all; read,
    it is built from its fields and holds them; written, it is written whole."""
    from dbt.adapters.events.types import SQLQuery
    from dbt_common.events.base_types import EventLevel
    from dbt_common.events.functions import fire_event

    info = logger_at(manager, EventLevel.INFO, "lakepulse-test-info-3")
    skipped = SQLQuery(conn_name="model.x", sql="select 1", node_info={})
    assert "pb_msg" not in vars(skipped)  # not built
    fire_event(skipped)
    assert "pb_msg" not in vars(skipped) and "select 1" not in info.getvalue()

    read = SQLQuery(conn_name="model.y", sql="select 2", node_info={})
    assert read.sql == "select 2" and read.conn_name == "model.y"  # built when read
    read.sql = "select 3"
    assert read.message().endswith("select 3")

    debug = logger_at(manager, EventLevel.DEBUG, "lakepulse-test-debug-2")
    logged = SQLQuery(conn_name="model.z", sql="select 4", node_info={})
    assert "pb_msg" in vars(logged)  # a logger writes debug lines: built at once
    fire_event(logged)
    assert "select 4" in debug.getvalue()
    assert manager.built == ["SQLQuery"]  # the one a logger wrote


_FLAG_SOURCES = """
from dbt_common.behavior_flags import Behavior, BehaviorFlagRendered
from lakepulse.warehouse.dbt import skip_unlogged_events

FLAG = {"name": "some_flag", "default": True, "docs_url": "https://example.com"}


def sources():
    rendered = BehaviorFlagRendered(FLAG, {})
    (in_behaviour,) = Behavior([FLAG], {})._flags  # as an adapter declares its flags
    return [f._behavior_change_event.flag_source for f in (rendered, in_behaviour)]


before = sources()
skip_unlogged_events()
print(before, sources())
"""


def test_behaviour_flags_name_the_module_that_declared_them_as_dbts_own_walk_did(tmp_path):
    """A new process: dbt's own walk of the stack first, then the one installed with
    ``skip_unlogged_events``; both name the module that declared the flag (a script: its
    ``__main__``)."""
    import subprocess
    import sys

    script = tmp_path / "declare_flags.py"
    script.write_text(_FLAG_SOURCES)
    result = subprocess.run([sys.executable, script], capture_output=True, text=True, check=True)
    assert result.stdout.split("] [") == ["['__main__', '__main__'", "'__main__', '__main__']\n"]
