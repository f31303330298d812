"""Atomic on-disk store of a sweep run: plan, run metadata, chunk files, result table (sweep layer).

Layout of ``<out>``::

    .sweep.lock            held (OS lock) by the one process running the sweep; names it
    plan.json              the chunk plan and the config hash it was built from
    run.json               config, package version, data sha256 per symbol, status
    chunks/<id>.parquet    one file per finished chunk, written atomically
    results.parquet        every chunk's rows in plan order (written when all chunks exist)

Every file is written to a temporary name in the same directory, flushed with ``fsync`` and
moved into place with ``os.replace``, so a process killed at any moment leaves either the old
file or the complete new one, never a partial file under the final name.

Two processes never run one directory at once: ``RunStore.lock()`` takes an exclusive OS lock
(``fcntl.flock``) on ``.sweep.lock`` for the whole run and removes the file when the run ends.
The OS drops the lock when its holder exits, however it exits, so a file left by a killed
process is taken over at once (with a warning); the file's text (pid, host, start time) names
the holder in the error a second process gets.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import logging
import os
import re
import socket
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from backtester._atomic import TMP_PREFIX, atomic_path, write_bytes_atomic
from backtester.errors import ConfigError, DataError

__all__ = ["CHUNK_ID", "LOCK_NAME", "RunStore", "write_bytes_atomic", "write_json_atomic"]

log = logging.getLogger(__name__)

LOCK_NAME = ".sweep.lock"
# a chunk id is "<symbol number>-<first column>" (plan.make_plan); nothing else names a file
CHUNK_ID = re.compile(r"^[0-9]{3,6}-[0-9]{10,}$")
_KINDS = ("results", "trades")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    write_bytes_atomic(path, text.encode())


class RunStore:
    """The files of one sweep run under ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.chunk_dir = self.root / "chunks"
        self.plan_path = self.root / "plan.json"
        self.run_path = self.root / "run.json"
        self.results_path = self.root / "results.parquet"

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    # -- metadata ---------------------------------------------------------------------------

    def create(self) -> None:
        """Create the run's directories."""
        try:
            self.chunk_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _os_error(exc, self.chunk_dir, "create") from exc

    @property
    def lock_path(self) -> Path:
        """Return the path of the run's lock file."""
        return self.root / LOCK_NAME

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run directory's exclusive lock for the ``with`` block.

        Creates ``root`` if needed (so an ``--out`` that is a file or cannot be written fails
        here, before any work).

        Raises
        ------
        ConfigError
            If another process holds the lock (the message names its pid, host and start
            time), or ``root`` is a file.
        DataError
            If the directory or the lock file cannot be created or locked (permissions, a full
            disk, a filesystem without locks).
        """
        created = not self.root.exists()
        fd = self._acquire()
        try:
            previous = _read_holder(fd, default="")
            if previous:  # its holder is gone (the OS released its lock) without cleaning up
                log.warning(
                    "taking over the lock of %s left by %s (not running)", self.root, previous
                )
            try:
                _write_holder(fd)
            except OSError as exc:
                raise _os_error(exc, self.lock_path, "write") from exc
            yield
        finally:
            # still holding the lock: remove its file (a process waiting on the old file sees
            # that it was replaced and tries again), and the folder if this run made it and
            # wrote nothing into it
            with contextlib.suppress(OSError):
                os.unlink(self.lock_path)
            if created:
                with contextlib.suppress(OSError):
                    self.root.rmdir()
            os.close(fd)  # closing the descriptor releases the lock

    def _acquire(self) -> int:
        # open + lock the lock file; retry if it was removed or replaced while we waited
        for _ in range(100):
            fd = self._open_lock()
            if fd < 0:
                continue
            try:
                _flock(fd)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise ConfigError(
                    f"--out {str(self.root)!r} is in use by another sweep ({holder}); wait for "
                    "it to finish or choose another --out"
                ) from None
            except OSError as exc:
                os.close(fd)
                raise DataError(
                    f"cannot lock {self.lock_path} ({exc.strerror or exc}); put --out on a local "
                    "filesystem that supports file locks"
                ) from exc
            try:
                now = os.stat(self.lock_path)
                held = os.fstat(fd)
                if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)
        raise DataError(f"cannot lock {self.lock_path}: it keeps being replaced; try again")

    def _open_lock(self) -> int:
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(
                f"--out {str(self.root)!r} is a file, not a directory; choose another --out"
            )
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            return os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            return -1  # the folder was removed in between (its last run ended): try again
        except OSError as exc:
            raise _os_error(exc, self.root, "create") from exc

    def has_plan(self) -> bool:
        """Return True if a plan was written here (a run was started)."""
        return self.plan_path.is_file()

    def read_json(self, path: Path) -> dict[str, Any]:
        """Read one of the run's JSON files (DataError naming the file if it is damaged)."""
        fix = f"the file is damaged; start a new run with another --out than {str(self.root)!r}"
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
        except FileNotFoundError as exc:
            raise DataError(
                f"{path} does not exist; is {str(self.root)!r} a sweep run directory?"
            ) from exc
        except UnicodeDecodeError:
            raise DataError(f"{path} is not UTF-8 text (binary data); {fix}") from None
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} is not valid JSON ({exc}); {fix}") from None
        except OSError as exc:
            raise _os_error(exc, path, "read") from exc
        if not isinstance(data, dict):
            raise DataError(f"{path} must hold a JSON object, was {type(data).__name__}; {fix}")
        return data

    def read_table(self, path: Path) -> pd.DataFrame:
        """Read a parquet table of the run (DataError naming the file if it is damaged)."""
        try:
            return pd.read_parquet(path)
        except FileNotFoundError:
            raise DataError(f"{path} does not exist; is {str(self.root)!r} finished?") from None
        except OSError as exc:
            if exc.errno is not None:
                raise _os_error(exc, path, "read") from exc
            raise _damaged(path, exc) from None
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise _damaged(path, exc) from None

    # -- chunks -----------------------------------------------------------------------------

    def chunk_path(self, chunk_id: str, kind: str = "results") -> Path:
        """Return the final path of chunk ``chunk_id``'s ``kind`` table (results or trades).

        Raises
        ------
        DataError
            If ``chunk_id`` is not a plan chunk id (e.g. ``../x`` in a tampered plan.json):
            nothing is ever written outside ``<out>/chunks``.
        """
        if not isinstance(chunk_id, str) or not CHUNK_ID.fullmatch(chunk_id):
            raise DataError(
                f"chunk id {chunk_id!r} in {self.plan_path} is not a chunk id like "
                "'000-0000000000'; the plan was edited or damaged, start a new run"
            )
        if kind not in _KINDS:
            raise DataError(f"chunk table kind must be one of {', '.join(_KINDS)}, was {kind!r}")
        suffix = "" if kind == "results" else f".{kind}"
        return self.chunk_dir / f"{chunk_id}{suffix}.parquet"

    def table_path(self, kind: str = "results") -> Path:
        """Return the path of the assembled ``kind`` table (results.parquet, trades.parquet)."""
        return self.root / f"{kind}.parquet"

    def write_chunk(self, chunk_id: str, frame: pd.DataFrame, kind: str = "results") -> Path:
        """Write one chunk's rows atomically and return the path.

        A chunk counts as finished once its results file exists, so the runner writes any
        other table of the chunk (trades) first.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = self.chunk_path(chunk_id, kind)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        try:
            with atomic_path(path) as tmp:
                pq.write_table(table, str(tmp), compression="zstd")
        except OSError as exc:
            raise _os_error(exc, path, "write") from exc
        return path

    def finished_chunks(self, expected_rows: dict[str, int] | None = None) -> set[str]:
        """Return the ids of complete chunk files; remove leftovers of interrupted writes.

        A chunk file whose footer cannot be read, or whose row count differs from
        ``expected_rows[id]`` when given, is removed so the chunk is computed again.
        """
        import pyarrow.parquet as pq

        if not self.chunk_dir.is_dir():
            return set()
        done: set[str] = set()
        for path in sorted(self.chunk_dir.iterdir()):
            if path.name.startswith(TMP_PREFIX):
                path.unlink(missing_ok=True)  # a write that never reached os.replace
                continue
            if path.suffix != ".parquet" or path.name.count(".") != 1:
                continue  # not a results file (e.g. <id>.trades.parquet)
            chunk_id = path.stem
            try:
                rows = pq.read_metadata(path).num_rows
            except Exception as exc:  # pyarrow raises several types for a bad footer
                log.warning("removing unreadable chunk %s (%s); it will be recomputed", path, exc)
                path.unlink(missing_ok=True)
                continue
            if expected_rows is not None:
                want = expected_rows.get(chunk_id)
                if want is None:
                    raise DataError(
                        f"{path} is not a chunk of this run's plan; remove it or start a new run"
                    )
                if rows != want:
                    log.warning("removing chunk %s with %d rows (expected %d)", path, rows, want)
                    path.unlink(missing_ok=True)
                    continue
            done.add(chunk_id)
        return done

    def read_chunks(self, chunk_ids: Iterable[str]) -> pd.DataFrame:
        """Return the rows of the given chunks, concatenated in the order given."""
        frames = [self.read_table(self.chunk_path(i)) for i in chunk_ids]
        if not frames:
            raise DataError(f"{self.root} has no finished chunks yet")
        return pd.concat(frames, ignore_index=True)

    def assemble(self, chunk_ids: list[str], kind: str = "results") -> Path:
        """Stream every chunk, in the order given, into ``<kind>.parquet`` (atomically).

        Memory stays bounded by one chunk: chunks are read and appended one at a time.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not chunk_ids:
            raise ConfigError("a sweep plan must hold at least one chunk")
        missing = [i for i in chunk_ids if not self.chunk_path(i, kind).is_file()]
        if missing:
            raise DataError(
                f"{len(missing)} chunks are not finished (first {missing[0]}); "
                f"run the sweep with --resume --out {self.root}"
            )
        schemas = [pq.read_schema(self.chunk_path(i, kind)) for i in chunk_ids]
        schema = pa.unify_schemas(schemas, promote_options="permissive").remove_metadata()
        target = self.table_path(kind)
        try:
            with (
                atomic_path(target) as tmp,
                tmp.open("wb") as fh,
                pq.ParquetWriter(fh, schema, compression="zstd") as writer,
            ):
                for chunk_id in chunk_ids:
                    table = pq.read_table(self.chunk_path(chunk_id, kind))
                    for name in schema.names:  # a column some chunks never produced
                        if name not in table.column_names:
                            table = table.append_column(
                                schema.field(name),
                                pa.nulls(table.num_rows, schema.field(name).type),
                            )
                    table = table.select(schema.names).cast(schema)
                    writer.write_table(table)
        except OSError as exc:
            raise _os_error(exc, target, "write") from exc
        return target


def _os_error(exc: OSError, path: Path, action: str) -> DataError:
    # one line naming the path and the fix for an operating-system fault
    code = errno.errorcode.get(exc.errno or 0, "")
    reason = f"{exc.strerror or exc}{f' ({code})' if code else ''}"
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        fix = "free space on that disk (or choose an --out on another one), then run again"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "choose an --out you can write to"
    elif exc.errno in (errno.ENOTDIR, errno.EEXIST):
        fix = "a part of the path is a file; choose another --out"
    else:
        fix = "check the path and the disk"
    return DataError(f"cannot {action} {path}: {reason}; {fix}")


def _damaged(path: Path, exc: Exception) -> DataError:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return DataError(
        f"{path} is damaged ({first}); rebuild it from the chunks with the same "
        f"`backtester sweep CONFIG --out {path.parent} --resume`, or start a new run"
    )


def _flock(fd: int) -> None:
    # BlockingIOError when another process holds the lock
    if sys.platform == "win32":  # pragma: no cover - not tested on Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as exc:
            raise BlockingIOError(str(exc)) from exc
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _read_holder(fd: int, default: str = "holder unknown") -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 4096).decode("utf-8", "replace")
        info = json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return default
    if not isinstance(info, dict):
        return default
    return (
        f"pid {info.get('pid', '?')} on host {info.get('host', '?')}, "
        f"started {info.get('started', '?')}"
    )


def _write_holder(fd: int) -> None:
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    text = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started})
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, text.encode() + b"\n")
    os.fsync(fd)
