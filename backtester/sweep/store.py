"""Atomic on-disk store of a sweep run: plan, run metadata, chunk files, result table (sweep layer).

Layout of ``<out>``::

    plan.json              the chunk plan and the config hash it was built from
    run.json               config, package version, data sha256 per symbol, status
    chunks/<id>.parquet    one file per finished chunk, written atomically
    results.parquet        every chunk's rows in plan order (written when all chunks exist)

Every file is written to a temporary name in the same directory, flushed with ``fsync`` and
moved into place with ``os.replace``, so a process killed at any moment leaves either the old
file or the complete new one, never a partial file under the final name.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from backtester._atomic import TMP_PREFIX, atomic_path, write_bytes_atomic
from backtester.errors import ConfigError, DataError

__all__ = ["RunStore", "write_bytes_atomic", "write_json_atomic"]

log = logging.getLogger(__name__)


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
        self.chunk_dir.mkdir(parents=True, exist_ok=True)

    def has_plan(self) -> bool:
        """Return True if a plan was written here (a run was started)."""
        return self.plan_path.is_file()

    def read_json(self, path: Path) -> dict[str, Any]:
        """Read one of the run's JSON files (DataError naming the file if it is damaged)."""
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise DataError(
                f"{path} does not exist; is {str(self.root)!r} a sweep run directory?"
            ) from exc
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} is not valid JSON ({exc}); start a new run") from exc
        if not isinstance(data, dict):
            raise DataError(f"{path} must hold a JSON object; start a new run")
        return data

    # -- chunks -----------------------------------------------------------------------------

    def chunk_path(self, chunk_id: str, kind: str = "results") -> Path:
        """Return the final path of chunk ``chunk_id``'s ``kind`` table (results or trades)."""
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
        with atomic_path(path) as tmp:
            pq.write_table(table, str(tmp), compression="zstd")
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
        frames = [pd.read_parquet(self.chunk_path(i)) for i in chunk_ids]
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
        return target
