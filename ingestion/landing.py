"""The landing log: immutable micro-batch files, the collector's durable hand-off to the loader.

Layout: ``<landing>/p=NN/<micros>-<random>.<kind>.ndjson`` where ``NN`` is a stable hash of the
tenant, ``micros`` the time the file was published and ``kind`` is ``events`` or ``rejected``.
A file is written under a temporary name, fsync'd, renamed into place and its directory fsync'd
before the collector acknowledges the request, so an acknowledged event survives a crash and a
reader never sees a partial file.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
import weakref
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import orjson

from lakepulse.core.settings import LANDING_PARTITIONS

if TYPE_CHECKING:  # Arrow is imported by the readers only: the sensors list files, no more
    import pyarrow as pa

KINDS = ("events", "rejected")
_ENCODER = msgspec.json.Encoder()


def encode_rows(rows: Iterable[Any]) -> bytes:
    """Landing lines: one call for them all, in C; dicts (``normalize``'s) and the compiled
    pass's ``LandingRow`` structs alike, each on its own line (empty: no rows)."""
    return _ENCODER.encode_lines(rows if isinstance(rows, list) else list(rows))


def partition_for(tenant_id: str, partitions: int = LANDING_PARTITIONS) -> int:
    """Stable across processes and versions (unlike ``hash()``)."""
    return zlib.crc32(tenant_id.encode()) % partitions


@dataclass(frozen=True, order=True)
class LandingFile:
    partition: str
    name: str
    path: Path

    @property
    def kind(self) -> str:
        return self.name.split(".")[-2]

    @property
    def published_micros(self) -> int:
        return int(self.name.split("-", 1)[0])


_names = random.Random()
"""Random parts of file names: uniqueness is all they need, so a per-process generator
(seeded from the OS, reseeded in a forked child) rather than a system call a name."""
os.register_at_fork(after_in_child=_names.seed)


def _token() -> str:
    return f"{_names.getrandbits(48):012x}"


def _publish(directory: Path, body: bytes, name: Callable[[], str]) -> Path:
    """Write to a temporary name, fsync, rename to ``name()`` (asked for only once the bytes
    are on disk), fsync the directory: a reader sees no file, the old one or the whole new one,
    and a crash loses nothing acknowledged."""
    tmp = directory / f".tmp-{_token()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        try:
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        # A full or failing disk: no half-written file stays behind (nor its space).
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    final = directory / name()
    os.rename(tmp, final)
    _fsync_dir(directory)
    return final


def _publish_at(dir_fd: int, body: bytes | list[bytes], name: Callable[[], str]) -> str:
    """:func:`_publish` relative to an open directory; returns the file's name. ``body`` may be
    a list of byte strings, the file's parts in order (written by one ``writev``, not joined)."""
    tmp = f".tmp-{_token()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640, dir_fd=dir_fd)
    try:
        try:
            _write_all(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    final = name()
    os.rename(tmp, final, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    os.fsync(dir_fd)
    return final


_IOV_MAX = 1024
"""The most buffers one ``writev`` takes (Linux's ``IOV_MAX``)."""


def _write_all(fd: int, body: bytes | list[bytes]) -> None:
    """Every byte of ``body`` (bytes, or parts written in order) to ``fd``: one system call
    for the usual case, the rest written on after a short write."""
    if isinstance(body, list):
        if len(body) == 1:
            body = body[0]
        elif len(body) <= _IOV_MAX:
            written, total = os.writev(fd, body), sum(map(len, body))
            if written == total:
                return
            body = b"".join(body)[written:]
        else:
            body = b"".join(body)
    view = memoryview(body)
    while view:
        view = view[os.write(fd, view) :]


def _close_all(fds: dict[Path, int]) -> None:
    for fd in fds.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LandingLog:
    """Writer and lister of the landing log under one root directory."""

    def __init__(
        self, root: Path, partitions: int = LANDING_PARTITIONS, keep_dirs_open: bool = False
    ):
        self.root = Path(root)
        self.partitions = partitions
        self._made: set[Path] = set()
        """Partition directories known to exist: ``mkdir`` once, not per write (hot path)."""
        self._dir_fds: dict[Path, int] | None = {} if keep_dirs_open else None
        """``keep_dirs_open`` (the collector's long-lived writer): partition directories kept
        open, so a write round opens no directory; closed when the log is collected."""
        if self._dir_fds is not None:
            weakref.finalize(self, _close_all, self._dir_fds)

    def partition_dir(self, tenant_id: str) -> Path:
        return self.root / f"p={partition_for(tenant_id, self.partitions):02d}"

    def write(self, tenant_id: str, kind: str, rows: Iterable[dict[str, Any]]) -> Path | None:
        """Durably publish ``rows`` as one new file; returns its path (None when no rows)."""
        if kind not in KINDS:
            raise ValueError(f"unknown landing file kind {kind!r}")
        body = encode_rows(rows)
        if not body:
            return None
        return self.write_encoded(tenant_id, kind, [body])

    def write_encoded(self, tenant_id: str, kind: str, bodies: list[bytes]) -> Path:
        """Durably publish the lines :func:`encode_rows` made (one or more runs of them, in
        order) as one new file; returns its path."""
        if kind not in KINDS:
            raise ValueError(f"unknown landing file kind {kind!r}")
        directory = self.partition_dir(tenant_id)
        token = _token()

        def name() -> str:  # named at publish time, so names sort (nearly) in publication order
            return f"{time.time_ns() // 1000:016d}-{token}.{kind}.ndjson"

        if self._dir_fds is not None:
            return directory / self._publish_open(directory, bodies, name)
        body = bodies[0] if len(bodies) == 1 else b"".join(bodies)
        if directory in self._made:
            try:
                return _publish(directory, body, name)
            except FileNotFoundError:  # the directory was removed meanwhile: make it again
                self._made.discard(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._made.add(directory)
        return _publish(directory, body, name)

    def _publish_open(
        self, directory: Path, body: bytes | list[bytes], name: Callable[[], str]
    ) -> str:
        """``_publish`` through the partition directory's open descriptor: the file made,
        renamed and the directory fsync'd relative to it (six system calls a file, no path
        lookups). A directory removed meanwhile refuses the new file: opened again."""
        fds = self._dir_fds
        assert fds is not None
        for attempt in (1, 2):
            fd = fds.get(directory)
            if fd is None:
                directory.mkdir(parents=True, exist_ok=True)
                fd = fds[directory] = os.open(
                    directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
                )
            try:
                return _publish_at(fd, body, name)
            except FileNotFoundError:
                os.close(fds.pop(directory))
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def rewrite(self, f: LandingFile, body: bytes) -> None:
        """Replace a published file's content under the same name (erasure), as durably and
        atomically as it was first written; the loader's cursors stay valid."""
        _publish(f.path.parent, body, lambda: f.name)

    def files(self, kind: str | None = None) -> Iterator[LandingFile]:
        """Published files, per partition in name (publication) order."""
        if not self.root.exists():
            return
        for part in sorted(p for p in self.root.iterdir() if p.name.startswith("p=")):
            names = sorted(
                n
                for n in os.listdir(part)
                if n.endswith(".ndjson")
                and not n.startswith(".")
                and (kind is None or f".{kind}." in n)
            )
            for name in names:
                yield LandingFile(part.name, name, part / name)

    def latest_name(self) -> str | None:
        """Newest published file name across partitions: a cheap change marker for sensors."""
        return max((f.name for f in self.files()), default=None)


@dataclass(frozen=True)
class Conflict:
    """A landing line that does not fit the schema (e.g. written by another version)."""

    file: LandingFile
    line_no: int
    line: bytes
    error: str


def read_files(
    files: list[LandingFile], schema: pa.Schema, conflicts: list[Conflict] | None = None
) -> pa.Table:
    """Read landing files into one Arrow table with ``schema`` (unknown fields ignored).

    A file with a line that does not fit the schema is read line by line; the misfits go to
    ``conflicts`` (raise when it is None) and the rest are kept.
    """
    import pyarrow as pa
    import pyarrow.json as pajson

    options = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    if not files:
        return schema.empty_table()
    # One parse over all files: per-call set-up dominates for small micro-batch files.
    buffer = b"".join(f.path.read_bytes() for f in files)
    try:
        return pajson.read_json(pa.BufferReader(buffer), parse_options=options).select(schema.names)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass  # find the file (and line) that does not fit
    tables = []
    for f in files:
        try:
            tables.append(pajson.read_json(f.path, parse_options=options))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            if conflicts is None:
                raise
            tables.append(_read_lines(f, schema, conflicts))
    return pa.concat_tables(tables).select(schema.names)


def _read_lines(f: LandingFile, schema: pa.Schema, conflicts: list[Conflict]) -> pa.Table:
    import pyarrow as pa

    rows = []
    for line_no, line in enumerate(f.path.read_bytes().splitlines()):
        try:
            row = orjson.loads(line)
            pa.Table.from_pylist([row], schema=schema)
        except (orjson.JSONDecodeError, pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as err:
            conflicts.append(Conflict(f, line_no, line, str(err).splitlines()[0][:200]))
            continue
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=schema)


# Reader cursors ------------------------------------------------------------------------------
# Per partition: a watermark (newest file name consumed) plus the names consumed within the last
# LOOKBACK_MICROS. Files are named when published, but two writers can publish out of name
# order by a few milliseconds; the lookback keeps such a file from being skipped.
LOOKBACK_MICROS = 60 * 1_000_000


def pending_files(files: list[LandingFile], cursor: dict) -> list[LandingFile]:
    """Files of one partition a reader with ``cursor`` has not consumed yet."""
    watermark = cursor.get("watermark", "")
    recent = set(cursor.get("recent", []))
    floor = name_minus(watermark, LOOKBACK_MICROS)
    return [f for f in files if f.name > watermark or (f.name >= floor and f.name not in recent)]


def name_minus(name: str, micros: int) -> str:
    if not name:
        return ""
    return f"{max(int(name.split('-', 1)[0]) - micros, 0):016d}"


def advance_cursor(cursor: dict, loaded: list[LandingFile]) -> dict:
    """The cursor after ``loaded`` were consumed."""
    names = set(cursor.get("recent", [])) | {f.name for f in loaded}
    watermark = max([cursor.get("watermark", ""), *names])
    floor = name_minus(watermark, LOOKBACK_MICROS)
    return {"watermark": watermark, "recent": sorted(n for n in names if n >= floor)}


def read_cursors(state_path: Path, resource: str) -> dict[str, dict]:
    """Cursors the loader committed, read from dlt's local pipeline state file as JSON (no dlt
    import, so the collector can report lag cheaply)."""
    try:
        state = json.loads(state_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    resources = state.get("sources", {}).get("landing_log", {}).get("resources", {})
    return resources.get(resource, {}).get("cursors", {})


def backlog(
    log: LandingLog, cursors: dict[str, dict], kind: str = "events"
) -> dict[str, float | int | None]:
    """Files not consumed yet and the age of the oldest: the lag between a 200 OK and bronze."""
    by_partition: dict[str, list[LandingFile]] = {}
    for f in log.files(kind):
        by_partition.setdefault(f.partition, []).append(f)
    pending = [
        f for p, files in by_partition.items() for f in pending_files(files, cursors.get(p, {}))
    ]
    oldest = min((f.published_micros for f in pending), default=None)
    return {
        "pending_files": len(pending),
        "oldest_pending_age_s": None if oldest is None else round(time.time() - oldest / 1e6, 3),
    }
