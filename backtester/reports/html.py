"""Static HTML report writer: one page with figures (PNG) and tables (HTML, CSV, parquet).

Layer: reports (frames and Figures in, files out; never imports survival or sweep).
The page is self-contained apart from its ``figures/`` folder and loads no scripts or fonts
from the network, so it renders offline.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from backtester._atomic import write_bytes_atomic

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["ReportFigure", "ReportSection", "ReportTable", "write_report"]

_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #e3e3e3; padding-bottom: 0.2em; margin-top: 2em; }
.meta { color: #666; font-size: 0.9em; }
.note { background: #f6f8fa; border-left: 4px solid #8aa4c8; padding: 0.6em 1em; margin: 1em 0; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
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
    """A figure to save as ``figures/<name>.png`` with a caption."""

    name: str
    figure: Figure
    caption: str


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


def _table_for_files(df: pd.DataFrame) -> pd.DataFrame:
    # parquet needs one type per column: object columns holding None and floats become strings
    out = df.copy()
    out.attrs = {}
    for name in out.columns:
        if out[name].dtype == object:
            out[name] = [None if v is None else str(v) for v in out[name]]
    return out


def write_report(
    out_dir: str | os.PathLike[str],
    *,
    title: str,
    subtitle: str,
    sections: list[ReportSection],
    run_info: dict[str, Any],
) -> Path:
    """Write ``index.html``, ``figures/*.png``, ``tables/*.{csv,parquet}`` and ``run.json``.

    Returns the path of ``index.html``. Existing files of the same names are replaced.
    """
    from backtester.reports.plots import save_figure

    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    body: list[str] = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">{html.escape(subtitle)}</p>',
    ]
    for section in sections:
        body.append(f"<h2>{html.escape(section.heading)}</h2>")
        for para in section.paragraphs:
            css = "headline" if section.headline else "note"
            body.append(f'<p class="{css}">{html.escape(para)}</p>')
        for fig in section.figures:
            save_figure(fig.figure, str(out / "figures" / f"{fig.name}.png"))
            body.append(
                f'<figure><img src="figures/{fig.name}.png" alt="{html.escape(fig.caption)}">'
                f"<figcaption>{html.escape(fig.caption)}</figcaption></figure>"
            )
        for table in section.tables:
            frame = _table_for_files(table.data)
            frame.to_csv(out / "tables" / f"{table.name}.csv", index=False)
            frame.to_parquet(out / "tables" / f"{table.name}.parquet", index=False)
            shown = table.display if table.display is not None else table.data
            if table.caption:
                body.append(f"<p>{html.escape(table.caption)}</p>")
            rendered = shown.to_html(index=False, border=0, na_rep="n/a", escape=True)
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
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
    write_bytes_atomic(
        out / "run.json", (json.dumps(run_info, indent=2, default=str) + "\n").encode()
    )
    index = out / "index.html"
    write_bytes_atomic(index, page.encode("utf-8"))
    return index
