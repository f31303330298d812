"""Static HTML report writer: one page with figures (PNG) and tables (HTML, CSV, parquet).

Layer: reports (frames and Figures in, files out; never imports survival or sweep).
The page is self-contained apart from its ``figures/`` folder and loads no scripts or fonts
from the network, so it renders offline.

A report never writes over what it did not create. It writes into a new or empty folder and
leaves a ``.backtester-report`` marker there listing the files it wrote (and what wrote them);
a later report may replace exactly those files. Any other non-empty folder, a file, and a sweep
run directory (``run.json``, ``plan.json``, ``results.parquet``, ``chunks/``) are refused with
one line naming the path and the fix. ``check_output_dir`` makes that check (and a write probe)
cheaply, so callers can run it before the long work.
"""

from __future__ import annotations

import contextlib
import errno
import html
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from backtester._atomic import TMP_PREFIX, atomic_path, write_bytes_atomic
from backtester.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = [
    "MARKER",
    "ReportFigure",
    "ReportSection",
    "ReportTable",
    "check_output_dir",
    "write_report",
]

#: the file a report leaves in its folder: which files it wrote, so only those are replaced
MARKER = ".backtester-report"
# names that make a folder a sweep run directory (sweep/store.py); a report never writes there
_SWEEP_NAMES = (".sweep.lock", "plan.json", "results.parquet", "chunks")

_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #e3e3e3; padding-bottom: 0.2em; margin-top: 2em; }
.meta { color: #666; font-size: 0.9em; }
.note { background: #f6f8fa; border-left: 4px solid #8aa4c8; padding: 0.6em 1em; margin: 1em 0; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
.table-wrap { max-width: 100%; overflow-x: auto; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 0.3em 0.7em; text-align: right; }
td { white-space: nowrap; }
.headline { font-size: 1.1em; background: #fff8e6; border-left: 4px solid #e0a800;
            padding: 0.6em 1em; }
details summary { cursor: pointer; color: #2a5db0; margin: 0.5em 0; }
th { background: #f3f3f3; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
.downloads { font-size: 0.85em; }
"""


_FOLD_ROWS = 24  # longer tables start folded (<details>) so the figures come first


@dataclass(frozen=True, slots=True)
class ReportFigure:
    """A figure to save as ``figures/<name>.png`` with a caption.

    ``figure`` is a matplotlib Figure or a function of no arguments that draws one: such a
    function is called when the report is written, perhaps in another process
    (``reports.render``), so building and drawing the figures runs on every core. ``cost`` is
    its drawing cost relative to a one-panel figure (about its number of panels): the
    costliest figures are drawn first, so the processes drawing them finish together.
    """

    name: str
    figure: Figure | Callable[[], Figure]
    caption: str
    cost: float = 1.0


@dataclass(frozen=True, slots=True)
class ReportTable:
    """A table: ``data`` is written as CSV and parquet, ``display`` (or data) is shown."""

    name: str
    data: pd.DataFrame
    display: pd.DataFrame | None = None
    caption: str = ""


@dataclass(frozen=True, slots=True)
class ReportSection:
    """A heading, paragraphs of plain text, then figures and tables (long tables folded)."""

    heading: str
    paragraphs: tuple[str, ...] = ()
    tables: tuple[ReportTable, ...] = ()
    figures: tuple[ReportFigure, ...] = field(default_factory=tuple)
    headline: bool = False
    #: ``(text, href)`` pairs shown as a list of links (both escaped; an href is a relative path)
    links: tuple[tuple[str, str], ...] = ()


def _fix(path: Path) -> str:
    return f"choose a new --out folder (or remove {path} yourself)"


def _os_fault(path: Path, exc: OSError) -> ConfigError:
    # one line naming the path, what the OS said and what to do about it
    where = Path(exc.filename) if getattr(exc, "filename", None) else path
    if where.name.startswith(TMP_PREFIX):  # our own temporary file: name the folder asked for
        where = path
    if exc.errno == errno.ENOSPC:
        why, fix = "the disk is full", "free some space or choose another folder (--out)"
    elif exc.errno == errno.EDQUOT:
        why, fix = "the disk quota is exceeded", "free some space or choose another folder (--out)"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why, fix = "it is not writable", "choose a writable folder (--out)"
    else:
        why, fix = exc.strerror or type(exc).__name__, "choose another folder (--out)"
    return ConfigError(f"cannot write the report to {where}: {why}; {fix}")


def _sweep_name(folder: Path) -> str | None:
    for name in _SWEEP_NAMES:
        if (folder / name).exists():
            return name
    return None


def _marked_files(folder: Path) -> set[str]:
    # the files an earlier report listed in its marker (relative posix paths)
    marker = folder / MARKER
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
        files = data["files"]
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise TypeError("files must be a list of strings")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"report marker {marker} is damaged ({type(exc).__name__}), so which files a report "
            f"wrote there is unknown; {_fix(folder)}"
        ) from None
    return {f for f in files if _safe_relative(f)}


def _safe_relative(name: str) -> bool:
    # a marker may only name files inside its folder
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts


def _probe(folder: Path, path: Path) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}probe.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise _os_fault(path, exc) from None


def check_output_dir(path: str | os.PathLike[str]) -> Path:
    """Check that a report may be written to folder ``path``; return it as a Path.

    Cheap (a few ``stat`` calls and one temporary file), so a command can call it before its
    long work. Allowed: a folder that does not exist yet (under a writable folder), an empty
    folder, or a folder an earlier report wrote (it holds the ``.backtester-report`` marker).
    Nothing is created.

    Raises
    ------
    ConfigError
        One line naming the path and the fix when ``path`` (or a parent) is a file, is a sweep
        run directory or one of its folders, holds files no report wrote, has a damaged marker,
        or cannot be written.
    """
    out = Path(path)
    for inner in (out, *out.parents):  # e.g. <run>/chunks or <run>/chunks/x
        if inner.name in _SWEEP_NAMES and _sweep_name(inner.parent):
            raise ConfigError(
                f"report folder {out} is inside the sweep run in {inner.parent}; a report never "
                f"writes into a run's files; use --out {inner.parent / 'report'} or a new folder"
            )
    if out.exists() and not out.is_dir():
        raise ConfigError(f"report folder {out} is a file, not a folder; {_fix(out)}")
    if out.is_dir():
        name = _sweep_name(out)
        if name is not None:
            raise ConfigError(
                f"report folder {out} is a sweep run directory (it holds {name}); a report "
                f"never writes into a run's files; use --out {out / 'report'} or a new folder"
            )
        try:
            entries = sorted(p.name for p in out.iterdir())
        except OSError as exc:
            raise _os_fault(out, exc) from None
        if entries and MARKER not in entries:
            raise ConfigError(
                f"report folder {out} already holds files no report wrote (e.g. {entries[0]}), "
                f"which must not be overwritten; {_fix(out)}"
            )
        if entries:
            _marked_files(out)  # a damaged marker is refused before the long work
        _probe(out, out)
        return out
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(
            f"report folder {out} cannot be created: {parent} is a file, not a folder; "
            "choose another --out folder"
        )
    _probe(parent, out)
    return out


def _table_for_files(df: pd.DataFrame) -> pd.DataFrame:
    # parquet needs one type per column: object columns holding None and floats become strings
    out = df.copy()
    out.attrs = {}
    for name in out.columns:
        if out[name].dtype == object:
            out[name] = [None if v is None else str(v) for v in out[name]]
    return out


def _write_marker(out: Path, title: str, files: set[str]) -> None:
    from backtester import __version__

    marker = {
        "written_by": f"backtester {__version__} report writer (backtester.reports.html)",
        "title": title,
        "note": "a later report may replace (or remove) exactly the files listed here",
        "files": sorted(files),
    }
    write_bytes_atomic(out / MARKER, (json.dumps(marker, indent=2) + "\n").encode())


def _csv_writer(frame: pd.DataFrame) -> Callable[[Path], None]:
    return lambda tmp: frame.to_csv(tmp, index=False)


def _parquet_writer(frame: pd.DataFrame) -> Callable[[Path], None]:
    return lambda tmp: frame.to_parquet(tmp, index=False)


def _bytes_writer(data: bytes) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    return write


def write_report(
    out_dir: str | os.PathLike[str],
    *,
    title: str,
    subtitle: str,
    sections: list[ReportSection],
    run_info: dict[str, Any],
) -> Path:
    """Write ``index.html``, ``figures/*.png``, ``tables/*.{csv,parquet}`` and ``run.json``.

    ``out_dir`` must pass :func:`check_output_dir`. Every figure is drawn first
    (``reports.render``: on every core where the platform forks), so one that fails to draw
    raises its error before any file is written. Every file is written atomically; the
    ``.backtester-report`` marker lists them, so a later report into the same folder replaces
    them (and removes the ones it no longer writes) and touches nothing else.
    Returns the path of ``index.html``.

    Raises
    ------
    ConfigError
        ``out_dir`` may not be written (see :func:`check_output_dir`), one of the report's
        files exists but no report wrote it, or the OS refused a write (a full disk, a
        read-only folder): one line naming the path and the fix.
    """
    from backtester.reports import render

    out = check_output_dir(out_dir)
    owned = _marked_files(out) if (out / MARKER).is_file() else set()
    figures = [fig for section in sections for fig in section.figures]
    order = [  # the files in the order they are written
        *(
            rel
            for s in sections
            for rel in (
                *(f"figures/{fig.name}.png" for fig in s.figures),
                *(f"tables/{t.name}.{ext}" for t in s.tables for ext in ("csv", "parquet")),
            )
        ),
        "run.json",
        "index.html",
    ]
    planned = set(order)
    for rel in order:  # refuse before drawing or writing anything
        target = out / rel
        if rel not in owned and (target.exists() or target.is_symlink()):
            raise ConfigError(
                f"report file {target} exists but no report wrote it (it is not listed in "
                f"{out / MARKER}); {_fix(out)}"
            )
    # the figures are drawn (on every core, reports.render) while this process lays out the
    # tables, and all of them before a file is written: a figure that fails to draw leaves the
    # folder as it was. A PNG has PIXEL_RATIO pixels per CSS pixel; the page shows it at the
    # figure's own size.
    with render.start([f.figure for f in figures], costs=[f.cost for f in figures]) as drawing:
        writes: list[tuple[str, Callable[[Path], None]]] = []
        body: list[str | int] = [  # an int: the figure of that number, once drawn
            f"<h1>{html.escape(title)}</h1>",
            f'<p class="meta">{html.escape(subtitle)} · <a href="run.json">run.json</a> (the '
            "settings, data and versions of this run)</p>",
        ]
        for section in sections:
            body.append(f"<h2>{html.escape(section.heading)}</h2>")
            for para in section.paragraphs:
                css = "headline" if section.headline else "note"
                body.append(f'<p class="{css}">{html.escape(para)}</p>')
            if section.links:
                items = "".join(
                    f'<li><a href="{html.escape(href, quote=True)}">{html.escape(text)}</a></li>'
                    for text, href in section.links
                )
                body.append(f'<ul class="links">{items}</ul>')
            for fig in section.figures:
                body.append(len(writes))  # replaced below by the figure's tag
                writes.append((f"figures/{fig.name}.png", _bytes_writer(b"")))
            for table in section.tables:
                frame = _table_for_files(table.data)
                writes.append((f"tables/{table.name}.csv", _csv_writer(frame)))
                writes.append((f"tables/{table.name}.parquet", _parquet_writer(frame)))
                shown = table.display if table.display is not None else table.data
                if table.caption:
                    body.append(f"<p>{html.escape(table.caption)}</p>")
                rendered = (
                    '<div class="table-wrap">'
                    + shown.to_html(index=False, border=0, na_rep="n/a", escape=True)
                    + "</div>"
                )
                if len(shown) > _FOLD_ROWS:
                    rendered = (
                        f"<details><summary>Show the table ({len(shown)} rows)</summary>"
                        f"{rendered}</details>"
                    )
                body.append(rendered)
                body.append(
                    f'<p class="downloads">Download: <a href="tables/{table.name}.csv">CSV</a> · '
                    f'<a href="tables/{table.name}.parquet">parquet</a></p>'
                )
        pngs = iter(drawing.results())
    for k, item in enumerate(body):
        if isinstance(item, int):
            rel, _ = writes[item]
            fig, png = figures.pop(0), next(pngs)
            writes[item] = (rel, _bytes_writer(png.data))
            body[k] = (
                f'<figure><img src="{rel}" width="{png.width}" alt="{html.escape(fig.caption)}">'
                f"<figcaption>{html.escape(fig.caption)}</figcaption></figure>"
            )
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(str(item) for item in body)
        + "\n</body></html>\n"
    )
    info = (json.dumps(run_info, indent=2, default=str) + "\n").encode()
    writes.append(("run.json", _bytes_writer(info)))
    writes.append(("index.html", _bytes_writer(page.encode("utf-8"))))
    try:
        _write_marker(out, title, owned | planned)  # first: a crash leaves every file listed
        for rel, write in writes:
            with atomic_path(out / rel) as tmp:
                write(tmp)
        for rel in sorted(owned - planned):  # the earlier report's files this one drops
            with contextlib.suppress(FileNotFoundError):
                (out / rel).unlink()
        _write_marker(out, title, planned)
    except OSError as exc:
        raise _os_fault(out, exc) from None
    return out / "index.html"
