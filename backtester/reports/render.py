"""Draw a report's figures to PNG bytes, on every core where the platform can fork.

Layer: reports (Figures, or functions that draw one, in; PNG bytes out; writes no report file).

A figure is given as a matplotlib ``Figure`` or as a function of no arguments that returns one
(called here, perhaps in another process, so a report's figures are built and drawn in one go).
``start(figures)`` begins drawing them and ``Rendering.results()`` returns every figure's PNG
bytes and display width, in order; ``render(figures)`` does both.

Where ``fork`` is available (not on Windows; not used on macOS, where forking a process that
has loaded system frameworks is unsafe), a core is free (not counting this process's; other
work's runnable threads are counted in ``/proc/loadavg``) and there is more than one figure,
child processes are forked when drawing starts, one per free core. They inherit the figures (nothing
is pickled), and every process, this one too once it calls ``results()``, takes the next
figure from one counter in shared memory, costliest first (``costs``), so the work splits by
itself whatever else loads the machine. A child writes each PNG to a private temporary folder
that this process reads back and removes; nothing goes near the report's folder, which the
caller writes once every figure is drawn. A figure a child did not deliver (its drawing failed,
the child died or stalled) is drawn again here, so an error is raised in this process exactly
as when drawing one figure after the other, and a child never prints a traceback.

Children only draw (matplotlib and NumPy; the data they draw was computed before the fork):
numba is never called in them, so the parent's numba thread pool (GNU OpenMP, which is not
fork-safe) is never used after a fork. A report runs no engine, so when it is written no
numba parallel region is in flight. Drawing the study's figures in a child while the
comparisons run the engine was measured and dropped: the child slowed the kernel's two
threads by more than it saved (benchmarks/README.md).

While drawing, Python's cyclic garbage collector leaves the objects that existed before alone
(``gc.freeze``): matplotlib makes many short-lived objects, and each full collection would
otherwise walk the whole heap (the study, pandas, numba), about a tenth of a report's drawing
time; the children do the same, which also keeps the parent's memory pages shared with them.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import shutil
import signal
import struct
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["FigureSource", "Png", "Rendering", "render", "start"]

#: a Figure, or a function of no arguments that returns one
FigureSource: TypeAlias = "Figure | Callable[[], Figure]"

#: at most this many child processes draw next to this one
MAX_CHILDREN = 3
#: a child that delivers nothing for this long is taken as stuck: it is stopped and its
#: figures are drawn here (a figure normally takes well under a second)
STALL_SECONDS = 120.0


@dataclass(frozen=True, slots=True)
class Png:
    """One drawn figure: its PNG bytes and the width in CSS pixels a page shows it at."""

    data: bytes
    width: int


def draw(source: FigureSource) -> Png:
    """Return ``source`` (a Figure, or a function that returns one) drawn as a PNG."""
    from matplotlib.figure import Figure

    from backtester.reports.plots import display_width, save_figure

    fig = source if isinstance(source, Figure) else source()
    buf = io.BytesIO()
    save_figure(fig, buf)
    return Png(buf.getvalue(), display_width(fig))


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _can_fork() -> bool:
    import multiprocessing

    if sys.platform in ("win32", "darwin") or "fork" not in multiprocessing.get_all_start_methods():
        return False  # pragma: no cover - Linux and the BSDs fork
    return not multiprocessing.current_process().daemon  # a daemon may not have children


def _others_running() -> int:
    # how many threads of other work are runnable right now: /proc/loadavg's count of runnable
    # threads (this one included), the median of a few readings a millisecond apart; 0 where
    # there is no /proc. (A container whose /proc shows the host's load draws in one process.)
    counts = []
    try:
        for _ in range(5):
            with open("/proc/loadavg", encoding="ascii") as f:
                counts.append(int(f.read().split()[3].split("/")[0]))
            time.sleep(0.001)
    except (OSError, ValueError, IndexError):
        return 0
    return max(0, sorted(counts)[len(counts) // 2] - 1)


def _children(n_figures: int, processes: int | None) -> int:
    # how many child processes to fork: one per core that is free now, less this process's;
    # none where forking is not possible. On a core other work keeps busy a child gained
    # nothing and at times cost more than a second (benchmarks/README.md)
    wanted = _cores() if processes is None else min(processes, _cores())
    if wanted <= 1 or n_figures <= 1 or not _can_fork():
        return 0
    free = wanted - 1 - _others_running()
    return max(0, min(free, n_figures - 1, MAX_CHILDREN))


@contextlib.contextmanager
def _old_objects_left_alone() -> Iterator[None]:
    # collections during drawing look at the objects made since (see the module docstring);
    # nothing is done where someone else froze objects already
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _take(counter: Any) -> int | None:
    # the number of the next figure to draw (every process takes from the same counter), or
    # None when none is left; a lock that cannot be had (a child died holding it) means: none
    lock = counter.get_lock()
    if not lock.acquire(timeout=10.0):
        return None
    try:
        k = counter.value
        counter.value = k + 1
        return int(k)
    finally:
        lock.release()


def _child(
    sources: Sequence[FigureSource], order: Sequence[int], counter: Any, folder: str
) -> None:
    # a forked child: draw the next figure in ``order`` until none is left; each PNG is written
    # as <index>.png (4 bytes of width, then the PNG) under a temporary name, renamed when whole
    gc.freeze()  # the inherited objects are never collected here (nor their pages copied)
    with contextlib.suppress(ValueError):  # not the main thread: the default stays
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        while (k := _take(counter)) is not None and k < len(order):
            i = order[k]
            png = draw(sources[i])
            path = os.path.join(folder, f"{i}.png")
            with open(path + ".part", "wb") as f:
                f.write(struct.pack(">I", png.width) + png.data)
            os.replace(path + ".part", path)
    except BaseException:  # the parent draws it again and raises it there
        os._exit(1)  # quietly: no second traceback on stderr


class Rendering:
    """Figures being drawn (``start``); ``results()`` draws the rest here and returns all."""

    def __init__(
        self,
        sources: Sequence[FigureSource],
        *,
        costs: Sequence[float] | None = None,
        processes: int | None = None,
    ) -> None:
        self._sources = list(sources)
        n = len(self._sources)
        if costs is not None and len(costs) != n:
            raise ValueError(f"costs needs one value per figure ({n}), was {len(costs)}")
        weight = list(costs) if costs is not None else [1.0] * n
        # costliest first (stable): the last figures to be taken are small, so the processes
        # finish together
        self._order = sorted(range(n), key=lambda i: -weight[i])
        self._done: dict[int, Png] = {}
        self._procs: list[Any] = []
        self._folder: str | None = None
        self._counter: Any = None
        children = _children(n, processes)
        if children:
            try:
                self._fork(children)
            except (OSError, ValueError, AssertionError):  # no fork after all: draw here
                self.close()

    def _fork(self, children: int) -> None:
        import importlib
        import multiprocessing

        from backtester.reports import plots

        # what drawing imports, imported once here rather than again in every child (~0.3 s)
        for name in ("figure", "backends.backend_agg", "patches", "ticker"):
            importlib.import_module(f"matplotlib.{name}")
        plots._colors(1)  # the colormap registry
        ctx = multiprocessing.get_context("fork")
        self._folder = tempfile.mkdtemp(prefix="backtester-figures-")
        self._counter = ctx.Value("l", 0, lock=True)
        with warnings.catch_warnings():
            # Python >= 3.12 warns on fork() in a process with threads (numba's idle pool):
            # the children never use them (module docstring)
            warnings.filterwarnings("ignore", message=r".*fork\(\) may lead to deadlocks")
            for _ in range(children):
                proc = ctx.Process(
                    target=_child,
                    args=(self._sources, self._order, self._counter, self._folder),
                    name="backtester-figures",
                    daemon=True,
                )
                proc.start()
                self._procs.append(proc)

    def results(self) -> list[Png]:
        """Draw what no child has taken, wait for the children, return every figure in order.

        Raises what drawing a figure raises (here, in this process), after stopping the
        children and removing their temporary folder.
        """
        try:
            with _old_objects_left_alone():
                if self._counter is not None:
                    while (k := _take(self._counter)) is not None and k < len(self._order):
                        i = self._order[k]
                        self._done[i] = draw(self._sources[i])
                    self._wait()
                for i in self._order:
                    if i not in self._done:  # a child's, or one no child delivered
                        self._done[i] = self._read(i) or draw(self._sources[i])
            return [self._done[i] for i in range(len(self._sources))]
        finally:
            self.close()

    def _delivered(self) -> int:
        assert self._folder is not None
        return sum(name.endswith(".png") for name in os.listdir(self._folder))

    def _wait(self) -> None:
        # until every child has exited; one that delivers nothing for STALL_SECONDS is stopped
        last, since = -1, time.monotonic()
        for proc in self._procs:
            while True:
                proc.join(timeout=0.02)
                if not proc.is_alive():
                    break
                count = self._delivered()
                if count != last:
                    last, since = count, time.monotonic()
                elif time.monotonic() - since > STALL_SECONDS:
                    proc.kill()
                    proc.join()
                    break

    def _read(self, i: int) -> Png | None:
        if self._folder is None:
            return None
        try:
            with open(os.path.join(self._folder, f"{i}.png"), "rb") as f:
                raw = f.read()
        except OSError:
            return None
        if len(raw) < 4:
            return None
        return Png(raw[4:], struct.unpack(">I", raw[:4])[0])

    def close(self) -> None:
        """Stop any child still drawing and remove the temporary folder (idempotent)."""
        for proc in self._procs:
            if proc.is_alive():
                proc.kill()
            proc.join()
            proc.close()
        self._procs = []
        self._counter = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def __enter__(self) -> Rendering:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start(
    sources: Sequence[FigureSource],
    *,
    costs: Sequence[float] | None = None,
    processes: int | None = None,
) -> Rendering:
    """Begin drawing ``sources``; the children (if any) draw while the caller goes on.

    ``costs`` (one per figure, e.g. its number of panels) orders the drawing, costliest first.
    ``processes`` caps the processes drawing, this one included (default: the usable cores;
    1 draws everything here, when ``results()`` is called). Use the result as a context
    manager, or call ``results()``, so children are always stopped.
    """
    return Rendering(sources, costs=costs, processes=processes)


def render(
    sources: Sequence[FigureSource],
    *,
    costs: Sequence[float] | None = None,
    processes: int | None = None,
) -> list[Png]:
    """Return every figure of ``sources`` drawn as a PNG, in order (see the module docstring)."""
    return start(sources, costs=costs, processes=processes).results()
