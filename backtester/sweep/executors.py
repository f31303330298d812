"""Where chunks run: in this process, in local worker processes, or on a Dask cluster (sweep layer).

Every executor takes the same inputs (the spec, the chunks still to do, the loaded markets and a
chunk function) and yields ``(chunk, rows)`` as chunks finish, in any order. Only the runner
writes files, so a worker that dies never leaves anything half-written behind.

Choosing between them: the engine's kernel is already parallel over columns, so ``workers=1``
runs chunks in this process with every core available to numba, while ``workers=N`` runs N
spawned processes with ``cores // N`` numba threads each, which also overlaps the Python work of
one chunk (signals, statistics, parquet) with another chunk's kernel. Measured on 2 shared cores
(benchmarks/bench_sweep_memory.py, 200,000 columns x 8,760 bars, alternating runs): 34-47 s
in-process vs 31-47 s with two processes, i.e. equal within noise, while two processes need about
twice the memory (0.71 vs 0.38 GiB peak) and ~3 s to start. Processes stay the default (they
also keep a crash in one chunk away from the runner); use ``--workers 1`` for small sweeps.

Security of Dask: a Dask client, scheduler and workers exchange pickles, and unpickling runs
code. Over plain ``tcp://`` nothing is authenticated or encrypted, so anyone who can reach the
scheduler or a worker can run code in this process and read the data. ``DaskExecutor`` therefore
accepts ``tcp://`` only on a loopback address (and warns even then), refuses it to another host
unless ``allow_insecure=True`` (``--allow-insecure-scheduler``: a cluster on a network you
trust), and supports ``tls://`` with certificates (``DaskSecurity``, i.e. ``--tls-ca-file``,
``--tls-cert``, ``--tls-key``), which authenticates both ends and encrypts the traffic.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeAlias
from urllib.parse import urlsplit

import pandas as pd

from backtester.errors import ConfigError
from backtester.sweep.config import SweepSpec
from backtester.sweep.plan import Chunk

__all__ = [
    "ChunkFunction",
    "DaskExecutor",
    "DaskSecurity",
    "Executor",
    "ProcessExecutor",
    "SerialExecutor",
    "check_scheduler",
    "make_executor",
]

log = logging.getLogger(__name__)

# a chunk function returns its result rows, or {"results": rows, "trades": ...} for more tables
ChunkOutput: TypeAlias = pd.DataFrame | Mapping[str, pd.DataFrame]
ChunkFunction: TypeAlias = Callable[[SweepSpec, Chunk, Any], ChunkOutput]


class Executor(Protocol):
    """Runs chunk functions and yields results as they finish."""

    def run(
        self, spec: SweepSpec, chunks: Sequence[Chunk], markets: Mapping[str, Any]
    ) -> Iterator[tuple[Chunk, ChunkOutput]]:
        """Yield ``(chunk, rows)`` for every chunk, in completion order."""
        ...


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


class SerialExecutor:
    """Run chunks one after another in this process (numba uses every core inside a chunk)."""

    def __init__(self, function: ChunkFunction) -> None:
        self.function = function

    def __repr__(self) -> str:
        return "SerialExecutor()"

    def run(
        self, spec: SweepSpec, chunks: Sequence[Chunk], markets: Mapping[str, Any]
    ) -> Iterator[tuple[Chunk, ChunkOutput]]:
        for chunk in chunks:
            yield chunk, self.function(spec, chunk, markets[chunk.symbol])


# -- local worker processes --------------------------------------------------------------------

# per-worker-process state, set once by the pool initializer (never used in the parent)
_WORKER: dict[str, Any] = {}


def _watch_parent(parent: int) -> None:
    # a worker whose parent was SIGKILLed must not linger: exit when the parent is gone
    import time

    while True:
        if os.getppid() != parent:
            os._exit(3)
        time.sleep(0.5)


def _init_worker(
    function: ChunkFunction, markets: Mapping[str, Any], numba_threads: int, parent: int
) -> None:
    os.environ.setdefault("NUMBA_NUM_THREADS", str(numba_threads))
    _WORKER["function"] = function
    _WORKER["markets"] = markets
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _run_in_worker(spec: SweepSpec, chunk: Chunk) -> ChunkOutput:
    function: ChunkFunction = _WORKER["function"]
    return function(spec, chunk, _WORKER["markets"][chunk.symbol])


class ProcessExecutor:
    """Run chunks in ``workers`` fresh (spawned) processes on this machine.

    Each worker receives the markets once, when it starts, and uses ``cores // workers`` numba
    threads. At most ``2 * workers`` chunks are in flight, so finished rows never pile up.
    """

    def __init__(self, function: ChunkFunction, workers: int) -> None:
        self.function = function
        self.workers = workers

    def __repr__(self) -> str:
        return f"ProcessExecutor(workers={self.workers})"

    def run(
        self, spec: SweepSpec, chunks: Sequence[Chunk], markets: Mapping[str, Any]
    ) -> Iterator[tuple[Chunk, ChunkOutput]]:
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

        threads = max(1, _cores() // self.workers)
        pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.function, dict(markets), threads, os.getpid()),
        )
        todo = list(chunks)[::-1]
        running: dict[Future[ChunkOutput], Chunk] = {}
        try:
            while todo or running:
                while todo and len(running) < 2 * self.workers:
                    chunk = todo.pop()
                    running[pool.submit(_run_in_worker, spec, chunk)] = chunk
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: running[f].id):
                    chunk = running.pop(future)
                    yield chunk, future.result()
        finally:
            pool.shutdown(wait=not running, cancel_futures=True)


# -- Dask ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DaskSecurity:
    """TLS certificates for a ``tls://`` Dask scheduler (``distributed.Security``).

    Parameters
    ----------
    ca_file : str or Path
        The certificate authority that signed the scheduler's and workers' certificates.
    cert : str or Path
        This client's certificate (PEM); it may also hold the private key.
    key : str or Path, optional
        This client's private key (PEM), when it is not inside ``cert``.
    """

    ca_file: str | Path
    cert: str | Path
    key: str | Path | None = None

    def __post_init__(self) -> None:
        for option, value in (
            ("--tls-ca-file", self.ca_file),
            ("--tls-cert", self.cert),
            ("--tls-key", self.key),
        ):
            if value is None:
                continue
            path = Path(value)
            if not path.is_file():
                raise ConfigError(
                    f"{option} {str(value)!r} is not a file; pass the path of a PEM file"
                )
            try:
                with path.open("rb"):
                    pass
            except OSError as exc:
                raise ConfigError(
                    f"{option} {str(value)!r} cannot be read ({exc.strerror or exc}); "
                    "check its permissions"
                ) from exc

    def to_distributed(self) -> Any:
        """Return the ``distributed.Security`` object (encryption required)."""
        dist = _import_distributed("tls://")
        return dist.Security(
            tls_ca_file=str(self.ca_file),
            tls_client_cert=str(self.cert),
            tls_client_key=None if self.key is None else str(self.key),
            require_encryption=True,
        )


_SCHEMES = ("tcp", "tls")


def _import_distributed(address: str) -> Any:
    import importlib

    try:
        return importlib.import_module("distributed")
    except ImportError as exc:
        raise ConfigError(
            f"--scheduler {address} needs Dask distributed, which is not installed; "
            "pip install 'backtester[dask]'"
        ) from exc


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def check_scheduler(
    address: str, *, security: DaskSecurity | None = None, allow_insecure: bool = False
) -> str:
    """Return the scheduler's host after checking the address is safe to send pickles to.

    Raises
    ------
    ConfigError
        For an address that is not ``tcp://HOST:PORT`` or ``tls://HOST:PORT``, a ``tls://``
        address without certificates (or certificates with ``tcp://``), or a plain ``tcp://``
        address that is not loopback without ``allow_insecure``.
    """
    if not isinstance(address, str) or "://" not in address:
        raise ConfigError(
            f"scheduler must be an address like tls://HOST:PORT or tcp://HOST:PORT, was {address!r}"
        )
    parts = urlsplit(address)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or ""
    if parts.scheme not in _SCHEMES or not host or port is None:
        raise ConfigError(
            f"scheduler must be an address like tls://HOST:PORT or tcp://HOST:PORT, was {address!r}"
        )
    if parts.scheme == "tls" and security is None:
        raise ConfigError(
            f"--scheduler {address} needs certificates: pass --tls-ca-file, --tls-cert "
            "(and --tls-key if the key is a separate file)"
        )
    if parts.scheme == "tcp" and security is not None:
        raise ConfigError(
            f"--tls-* certificates need a tls:// scheduler, was {address!r}; write "
            f"tls://{parts.netloc}"
        )
    if parts.scheme == "tcp" and not _is_loopback(host) and not allow_insecure:
        raise ConfigError(
            f"--scheduler {address} is plain tcp to another host: Dask sends pickles (code) "
            "unauthenticated and unencrypted, so anyone on the network could run code here; "
            "use tls:// with --tls-ca-file/--tls-cert/--tls-key, or pass "
            "--allow-insecure-scheduler for a cluster on a network you trust"
        )
    return host


class DaskExecutor:
    """Run chunks on a Dask distributed cluster at ``address``.

    ``address`` is ``tls://HOST:PORT`` with ``security`` (certificates), or ``tcp://HOST:PORT``
    on loopback; plain tcp to another host needs ``allow_insecure=True`` (see the module
    docstring: Dask's messages are pickles, which run code). The markets are scattered to every
    worker once; each chunk is one task. Results come back to this process, which writes them,
    so the workers need no shared filesystem (a strategy file must exist at the same absolute
    path on the workers).
    """

    def __init__(
        self,
        function: ChunkFunction,
        address: str,
        *,
        timeout: str = "10s",
        security: DaskSecurity | None = None,
        allow_insecure: bool = False,
    ) -> None:
        check_scheduler(address, security=security, allow_insecure=allow_insecure)
        self.function = function
        self.address = address
        self.timeout = timeout
        self.security = security

    def __repr__(self) -> str:
        return f"DaskExecutor({self.address!r})"

    def run(
        self, spec: SweepSpec, chunks: Sequence[Chunk], markets: Mapping[str, Any]
    ) -> Iterator[tuple[Chunk, ChunkOutput]]:
        dist = _import_distributed(self.address)
        if self.security is None:
            log.warning(
                "Dask scheduler %s: plain tcp is unauthenticated and carries pickles (code); use "
                "it only with a cluster you trust (prefer tls:// with certificates)",
                self.address,
            )
        options: dict[str, Any] = {}
        if self.security is not None:
            options["security"] = self.security.to_distributed()
        try:
            client: Any = dist.Client(
                self.address, timeout=self.timeout, set_as_default=False, **options
            )
        except (OSError, TimeoutError) as exc:
            raise ConfigError(
                f"cannot connect to the Dask scheduler at {self.address!r} ({exc}); "
                "check the address or start one with `dask scheduler`"
            ) from exc
        try:
            n_workers = max(1, len(client.scheduler_info().get("workers", {})))
            scattered = {
                symbol: client.scatter(market, broadcast=True, hash=False)
                for symbol, market in markets.items()
            }
            todo = list(chunks)[::-1]
            prefix = f"sweep-{spec.fingerprint()[:12]}"
            running: dict[Any, Chunk] = {}

            def submit() -> Any:
                chunk = todo.pop()
                future = client.submit(
                    self.function,
                    spec,
                    chunk,
                    scattered[chunk.symbol],
                    key=f"{prefix}-{chunk.id}",
                    pure=False,
                    retries=1,
                )
                running[future] = chunk
                return future

            first = [submit() for _ in range(min(len(todo), 2 * n_workers))]
            if not first:
                return
            queue: Any = dist.as_completed(first, loop=client.loop)
            for future in queue:
                chunk = running.pop(future)
                rows = future.result()
                future.release()
                if todo:
                    queue.add(submit())
                yield chunk, rows
        finally:
            client.close()


def make_executor(
    function: ChunkFunction,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    security: DaskSecurity | None = None,
    allow_insecure: bool = False,
) -> SerialExecutor | ProcessExecutor | DaskExecutor:
    """Return the executor for the CLI options ``--workers`` and ``--scheduler``.

    ``scheduler`` wins over ``workers``; ``workers=None`` means one process per core and
    ``workers=1`` runs in this process. ``security`` and ``allow_insecure`` go to
    ``DaskExecutor`` (see its checks).
    """
    if scheduler is not None:
        return DaskExecutor(function, scheduler, security=security, allow_insecure=allow_insecure)
    if security is not None or allow_insecure:
        raise ConfigError(
            "--tls-* and --allow-insecure-scheduler apply to --scheduler; add --scheduler or "
            "leave them out"
        )
    count = _cores() if workers is None else workers
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"workers must be an integer >= 1, was {workers!r}; try --workers 2")
    return SerialExecutor(function) if count == 1 else ProcessExecutor(function, count)
