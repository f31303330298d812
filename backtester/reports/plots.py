"""Matplotlib figures for survival and sweep reports; every function returns a Figure.

Layer: reports (frames and arrays in, ``matplotlib.figure.Figure`` out). Figures are built on
``Figure`` directly, never through ``pyplot``, so no global state or GUI backend is touched and
``plt.show()`` is never called. matplotlib is imported inside the functions so ``import
backtester`` stays light.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import pandas as pd

from backtester._typing import F64Array

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "FAN_LINEAR_TO",
    "PIXEL_RATIO",
    "display_width",
    "plot_account_survival_and_loss",
    "plot_bars",
    "plot_equity_fan",
    "plot_km_curves",
    "plot_liquidation_histograms",
    "plot_survival_heatmap",
    "plot_survival_lines",
    "plot_venue_crash_days",
    "save_figure",
]

_DPI = 110


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    return fig


def _style(ax: Axes) -> None:
    ax.grid(True, color="#d9d9d9", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _colors(n: int, cmap: str = "plasma") -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    cm = colormaps[cmap]
    if n <= 1:
        return [cm(0.15)]
    return [cm(0.05 + 0.8 * k / (n - 1)) for k in range(n)]


#: the colours of two groups (long and short, cross and isolated): blue and red
_TWO = [(0.12, 0.47, 0.71, 1.0), (0.84, 0.15, 0.16, 1.0)]


def _fmt_value(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "none"
    if isinstance(value, bool | np.bool_):
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer():
        return f"{int(value)}"
    return str(value)


#: pixels per CSS pixel of the saved PNGs: drawn at twice the figure's dpi, shown at its size,
#: so figures stay sharp on high-density screens
PIXEL_RATIO = 2


def display_width(fig: Figure) -> int:
    """Return the width in CSS pixels a page shows ``fig`` at (its size at the figure dpi)."""
    return round(float(fig.get_figwidth()) * float(fig.dpi))


def save_figure(fig: Figure, path: str | os.PathLike[str] | BinaryIO) -> None:
    """Write ``fig`` as a PNG at ``path`` (white background) at ``PIXEL_RATIO`` × its dpi.

    One Agg draw (the constrained layout runs inside it; ``savefig`` would draw twice, a dry
    run for the layout and the real one) and the RGB pixels written with zlib level 3 and no
    PNG row filter: the same pixels as ``savefig(dpi=2 × dpi)``, a quarter of PIL's encoding
    time (its adaptive filter tries five per row) and about 10 % smaller files.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    dpi = float(fig.dpi)
    fig.patch.set_facecolor("white")
    canvas = FigureCanvasAgg(fig)
    fig.set_dpi(dpi * PIXEL_RATIO)
    try:
        canvas.draw()  # type: ignore[no-untyped-call]
        rgba = np.asarray(canvas.buffer_rgba())  # type: ignore[no-untyped-call]
    finally:
        fig.set_dpi(dpi)
    data = _png_bytes(rgba, dpi * PIXEL_RATIO)
    if isinstance(path, str | os.PathLike):
        with open(path, "wb") as f:
            f.write(data)
    else:
        path.write(data)


def _png_bytes(rgba: np.ndarray, dpi: float) -> bytes:
    # a PNG of the (h, w, 4) uint8 pixels: RGB when every pixel is opaque (a figure on its
    # white background), RGBA otherwise; filter 0 per row, one zlib stream, pHYs at ``dpi``
    h, w, _ = rgba.shape
    opaque = bool((rgba[..., 3] == 255).all())
    channels = 3 if opaque else 4
    rows = np.zeros((h, 1 + w * channels), dtype=np.uint8)
    rows[:, 1:].reshape(h, w, channels)[...] = rgba[..., :channels]  # one copy, in place
    per_metre = round(dpi / 0.0254)

    def chunk(tag: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(tag + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", crc)

    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2 if opaque else 6, 0, 0, 0)),
            chunk(b"pHYs", struct.pack(">IIB", per_metre, per_metre, 1)),
            chunk(b"IDAT", zlib.compress(rows.tobytes(), 3)),
            chunk(b"IEND", b""),
        )
    )


def _title(ax: Axes, text: str, **kw: object) -> None:
    # a fixed title height (y=1, the axes top plus the usual pad): matplotlib's automatic
    # placement measures the whole y axis once per title to dodge top ticks these axes never
    # have (~10 % of a figure's drawing time, the same pixels)
    ax.set_title(text, y=1.0, **kw)  # type: ignore[arg-type]


def plot_survival_heatmap(
    table: pd.DataFrame,
    *,
    row: str = "stop_loss",
    col: str = "leverage",
    value: str = "survival",
    facet: str | None = "side",
    title: str = "Survival (not liquidated) at the horizon",
    row_label: str = "Stop-loss",
    col_label: str = "Leverage [x]",
    marked: str | None = None,
) -> Figure:
    """Return a heatmap of ``value`` (a fraction) over ``row`` × ``col``, one panel per ``facet``.

    Cells where the boolean column ``marked`` is true are hatched (the report uses it for a
    stop that lies beyond the liquidation price and so can never fire first).

    Cells are coloured red (0 %) to green (100 %) and annotated with the percentage.
    """
    facets = [None] if facet is None or facet not in table else list(dict.fromkeys(table[facet]))
    cols = sorted(dict.fromkeys(_key(v) for v in table[col]), key=_sort_key)
    rows = sorted(dict.fromkeys(_key(v) for v in table[row]), key=_sort_key)
    fig = _figure(1.6 + 0.62 * len(cols) * len(facets), 1.5 + 0.45 * len(rows))
    axes = fig.subplots(1, len(facets), squeeze=False)[0]
    image = None
    for ax, fv in zip(axes, facets, strict=True):
        sub = table if fv is None else table[table[facet] == fv]  # type: ignore[index]
        grid = np.full((len(rows), len(cols)), np.nan)
        for _, r in sub.iterrows():
            grid[rows.index(_key(r[row])), cols.index(_key(r[col]))] = float(r[value])
        image = ax.imshow(grid * 100, cmap="RdYlGn", vmin=0, vmax=100, aspect="auto")
        if marked is not None and marked in sub:
            from matplotlib.patches import Rectangle

            for _, r in sub[sub[marked].astype(bool)].iterrows():
                i, j = rows.index(_key(r[row])), cols.index(_key(r[col]))
                ax.add_patch(
                    Rectangle(
                        (j - 0.5, i - 0.5),
                        1,
                        1,
                        fill=False,
                        hatch="///",
                        linewidth=0,
                        edgecolor="black",
                        alpha=0.45,
                    )
                )
        for i in range(len(rows)):
            for j in range(len(cols)):
                v = grid[i, j]
                if math.isfinite(v):
                    shade = "black" if 25 <= v * 100 <= 80 else "white"
                    # inside the axes: left out of the layout pass (64 fewer texts measured)
                    cell = ax.text(
                        j, i, _cell_text(v), ha="center", va="center", fontsize=8, color=shade
                    )
                    cell.set_in_layout(False)
        ax.set_xticks(range(len(cols)), [_fmt_value(c) for c in cols])
        ax.set_yticks(range(len(rows)), [_fmt_stop(r) for r in rows])
        ax.set_xlabel(col_label)
        ax.set_ylabel(row_label)
        _title(ax, f"{fv}" if fv is not None else "")
    if image is not None:
        fig.colorbar(image, ax=list(axes), label="Survival [%]", shrink=0.9)
    fig.suptitle(title, fontsize=12)
    return fig


def _cell_text(value: float) -> str:
    # never round a survivor or a casualty away: 99.9 % prints ">99%", 0.2 % prints "<1%"
    pct = value * 100
    if 99.5 <= pct < 100:
        return ">99%"
    if 0 < pct < 0.5:
        return "<1%"
    return f"{pct:.0f}%"


def _key(value: object) -> object:
    # one hashable key per category: None and NaN both mean "none"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    return value


_ALL = object()  # the single group when there is no hue


def _subset(table: pd.DataFrame, hue: str | None, group: object) -> pd.DataFrame:
    if hue is None or group is _ALL:
        return table
    if group is None:
        return table[table[hue].isna()]
    return table[[_key(v) == group for v in table[hue]]]


def _sort_key(value: object) -> tuple[int, float | str]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return (0, 0.0)
    if isinstance(value, bool | np.bool_):
        return (1, float(value))
    if isinstance(value, int | float | np.integer | np.floating):
        return (1, float(value))
    return (2, str(value))


def _fmt_stop(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "none"
    if isinstance(value, int | float | np.floating):
        return f"{float(value) * 100:g}%"
    return str(value)


def plot_km_curves(
    curves: Mapping[str, tuple[F64Array, F64Array] | pd.DataFrame],
    *,
    title: str = "Kaplan–Meier survival by leverage",
    xlabel: str = "Days since entry",
    horizon: float | None = None,
    legend_title: str = "Leverage",
) -> Figure:
    """Return step plots of Kaplan–Meier curves, with their confidence bands when given.

    ``curves`` maps a label to ``(times, survival)`` or to a frame with columns ``time_days,
    survival, ci_low, ci_high`` (``SurvivalStudy.curve``), whose interval is shaded.
    """
    fig = _figure(8.3, 4.4)
    ax = fig.subplots()
    colors = _colors(len(curves))
    for (label, curve), color in zip(curves.items(), colors, strict=True):
        band = None
        if isinstance(curve, pd.DataFrame):
            t = curve["time_days"].to_numpy(dtype=float)
            s = curve["survival"].to_numpy(dtype=float)
            band = (curve["ci_low"].to_numpy(dtype=float), curve["ci_high"].to_numpy(dtype=float))
        else:
            t, s = np.asarray(curve[0], dtype=float), np.asarray(curve[1], dtype=float)
        if t.size == 0:  # every entry rejected: nothing to draw, say so in the legend
            ax.plot([], [], color=color, linewidth=1.8, label=f"{label} (not opened)")
            continue
        if horizon is not None and t[-1] < horizon:
            t = np.append(t, horizon)
            s = np.append(s, s[-1])
            band = (
                None
                if band is None
                else (np.append(band[0], band[0][-1]), np.append(band[1], band[1][-1]))
            )
        if band is not None:
            ax.fill_between(
                t, band[0] * 100, band[1] * 100, step="post", color=color, alpha=0.13, linewidth=0
            )
        ax.step(t, s * 100, where="post", color=color, linewidth=1.8, label=label)
    ax.set_ylim(-2, 102)
    if horizon is not None:
        ax.set_xlim(0, horizon)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Not yet liquidated [%]")
    _title(ax, title)
    _style(ax)
    # outside the axes: high leverages' curves run along the bottom, where a legend would hide them
    ax.legend(title=legend_title, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def plot_liquidation_histograms(
    durations: Mapping[str, F64Array | Mapping[str, F64Array]],
    *,
    horizon: float,
    title: str = "When liquidations happen",
    xlabel: str = "Days from entry to liquidation",
    series_title: str | None = None,
) -> Figure:
    """Return small-multiple histograms of time to liquidation, one panel per label.

    A panel's value is one array of days (a filled histogram) or a mapping of series label to
    array (one outlined histogram per series, e.g. per stop-loss, with a legend whose entries
    give each series' count; ``series_title`` heads the legend).
    """
    from matplotlib.ticker import MaxNLocator

    labels = list(durations)
    n = max(len(labels), 1)
    ncols = min(4, n)
    nrows = math.ceil(n / ncols)
    fig = _figure(2.6 * ncols + 0.6, 2.0 * nrows + 0.8)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False, sharex=True)).ravel()
    bins = np.linspace(0, horizon, 31)
    colors = _colors(n)
    for k, ax in enumerate(axes):
        if k >= len(labels):
            ax.set_visible(False)
            continue
        value = durations[labels[k]]
        series = value if isinstance(value, Mapping) else None
        if series is None:
            d = np.asarray(value, dtype=float)
            if d.size:
                ax.hist(d, bins=bins, color=colors[k], edgecolor="white", linewidth=0.4)
            _title(ax, f"{labels[k]}  (n={d.size})", fontsize=9)
            total = d.size
        else:
            shades = _colors(len(series), "viridis")
            counts = []
            for (name, days), color in zip(series.items(), shades, strict=True):
                d = np.asarray(days, dtype=float)
                counts.append(f"{d.size}")
                if d.size:
                    ax.hist(d, bins=bins, histtype="step", color=color, linewidth=1.3)
                if k == 0:  # one legend for the figure: the series are the same in every panel
                    ax.plot([], [], color=color, linewidth=1.6, label=name)
            total = sum(int(c) for c in counts)
            _title(ax, f"{labels[k]}\nn = {' / '.join(counts)}", fontsize=8.5)
        if total:
            # counts: no 0.5 ticks, and at most five labels in a small panel
            ax.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        else:
            ax.text(
                0.5,
                0.5,
                "no liquidations",
                ha="center",
                va="center",
                transform=ax.transAxes,
                color="#555555",
            )
            ax.set_yticks([])
            ax.set_xlim(0, horizon)
        _style(ax)
        if k % ncols == 0:
            ax.set_ylabel("Liquidations")
        if k >= (nrows - 1) * ncols:
            ax.set_xlabel(xlabel)
    if any(isinstance(v, Mapping) for v in durations.values()):
        fig.legend(
            loc="outside lower center",
            ncols=len(next(v for v in durations.values() if isinstance(v, Mapping))),
            title=series_title,
            fontsize=8,
            title_fontsize=8,
            frameon=False,
        )
    fig.suptitle(title, fontsize=12)
    return fig


#: the equity fan's y axis is linear from 0 to this share of the starting equity [%] and
#: logarithmic above it
FAN_LINEAR_TO = 100.0

#: one fan panel: days ``(k,)``, equity ``(k, n)`` and optionally the share liquidated ``(k,)``
FanData = tuple[F64Array, F64Array] | tuple[F64Array, F64Array, F64Array]


def plot_equity_fan(
    fans: Mapping[str, Mapping[str, FanData]] | Mapping[str, FanData],
    *,
    title: str = "Equity if closed after t days",
    xlabel: str = "Days since entry",
    ylabel: str = "Equity [% of initial]",
) -> Figure:
    """Return fan charts, one row of panels per group and one panel per label.

    ``fans`` maps a row label (a side) to ``{panel label: (days (k,), equity (k, n)[,
    liquidated (k,)])}``; a flat ``{label: (days, equity)}`` is one unlabelled row. Equity is
    a fraction of the starting equity, drawn in percent: bands for the 5–95 % and 25–75 %
    quantiles across entries, the median as a line, 100 % dashed. Every panel shares one y
    axis, linear from 0 to ``FAN_LINEAR_TO`` % and logarithmic above, so that the few entries
    that multiply the account at high leverage do not flatten the rest (liquidated entries
    sit at 0). With ``liquidated`` (the share of entries liquidated by each day) a panel's
    title gives the share liquidated by its last day.
    """
    from matplotlib.ticker import MaxNLocator, NullLocator

    rows = _fan_rows(fans)
    nrows = len(rows)
    ncols = max(len(panels) for _, panels in rows)
    if ncols == 0:
        raise ValueError("fans has no panel to draw; give at least one label's (days, equity)")
    fig = _figure(max(1.5 * ncols + 0.9, 4.5), 1.95 * nrows + 0.9)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    for ax in axes.flat:  # both limits are set below: no autoscaling of 12 shared axes per band
        ax.set_autoscale_on(False)
    colors = _colors(ncols, "viridis")
    top = FAN_LINEAR_TO
    for r, (row_label, panels) in enumerate(rows):
        for c in range(ncols):
            ax = axes[r][c]
            if c >= len(panels):
                ax.set_visible(False)
                continue
            label, data = panels[c]
            days = np.asarray(data[0], dtype=float)
            eq = np.asarray(data[1], dtype=float) * 100
            q = np.nanquantile(eq, [0.05, 0.25, 0.5, 0.75, 0.95], axis=1)
            top = max(top, float(np.nanmax(q[4])))
            ax.fill_between(days, q[0], q[4], color=colors[c], alpha=0.18, linewidth=0)
            ax.fill_between(days, q[1], q[3], color=colors[c], alpha=0.38, linewidth=0)
            ax.plot(days, q[2], color=colors[c], linewidth=1.8)
            ax.axhline(100, color="#555555", linewidth=0.8, linestyle="--")
            # a short row label (a side) leads the title; a long one (a leg set) only heads its row
            short = row_label is not None and len(row_label) <= 8
            name = f"{row_label} {label}" if short else label
            if len(data) == 3:
                share = float(np.asarray(data[2], dtype=float)[-1])
                name += "\nnone liquidated" if share == 0 else f"\n{_cell_text(share)} liquidated"
            _title(ax, name, fontsize=8.5)
            _style(ax)
            if c == 0 and row_label is not None and nrows > 1:
                ax.set_ylabel(
                    row_label.replace(", ", "\n"), fontsize=9 if len(row_label) > 8 else 10
                )
    ax0 = axes[0][0]
    end = max(float(np.asarray(p[1][0])[-1]) for _, ps in rows for p in ps)
    ax0.set_xlim(-0.06 * end, 1.06 * end)  # a gap: the last tick never meets the next panel's first
    xt = MaxNLocator(nbins=3, steps=[1, 2, 2.5, 3, 5, 10], integer=True).tick_values(0, end)
    ax0.set_xticks([t for t in xt if 0 <= t <= end])
    fig.supxlabel(xlabel, fontsize=10)
    fig.supylabel(ylabel, fontsize=10)
    ax0.set_yscale("symlog", linthresh=FAN_LINEAR_TO, linscale=1.0)
    upper = top * 1.15
    # 0-100 % every 25 on the linear part, then 200, 500, 1,000, 2,000, ... while they fit
    ticks = [0.0, 25.0, 50.0, 75.0, 100.0] + [
        t for e in range(2, 8) for m in (2.0, 5.0, 10.0) if (t := m * 10.0**e) <= upper
    ]
    ax0.yaxis.set_minor_locator(NullLocator())
    ax0.set_yticks(ticks, [f"{t:,.0f}" for t in ticks])
    ax0.set_ylim(-4, upper)
    wide = fig.get_figwidth() >= 8  # else the title takes three lines, not one
    gap = "  " if wide else "\n"
    fig.suptitle(
        f"{title}{gap}(bands: 5–95 % and 25–75 % of entries; line: median;"
        f"{' ' if wide else gap}y linear to {FAN_LINEAR_TO:g} %, log above)",
        fontsize=10.5 if wide else 9,
    )
    return fig


def _fan_rows(
    fans: Mapping[str, Mapping[str, FanData]] | Mapping[str, FanData],
) -> list[tuple[str | None, list[tuple[str, FanData]]]]:
    # nested {row: {panel: data}} as it is; a flat {panel: data} is one row without a label
    if all(isinstance(v, Mapping) for v in fans.values()):
        nested: Mapping[str, Mapping[str, FanData]] = fans  # type: ignore[assignment]
        return [(row, list(panels.items())) for row, panels in nested.items() if panels] or [
            (None, [])
        ]
    return [(None, list(fans.items()))]  # type: ignore[arg-type]


def plot_survival_lines(
    table: pd.DataFrame,
    *,
    x: str,
    hue: str | None,
    title: str,
    xlabel: str,
    y: str = "survival",
    ci: tuple[str, str] | None = ("ci_low", "ci_high"),
    log_x: bool = True,
    ylabel: str = "Survival at horizon [%]",
    hue_label: str | None = None,
) -> Figure:
    """Return ``y`` (a fraction) against ``x``, one line per ``hue`` value with a shaded interval."""
    fig = _figure(7.2, 4.2)
    ax = fig.subplots()
    groups: list[object] = (
        [_ALL] if hue is None else sorted(dict.fromkeys(_key(v) for v in table[hue]), key=_sort_key)
    )
    colors = _colors(len(groups), "viridis") if len(groups) > 2 else _TWO[: len(groups)]
    for g, color in zip(groups, colors, strict=True):
        sub = _subset(table, hue, g)
        sub = sub.sort_values(x)
        xs = sub[x].to_numpy(dtype=float)
        label = None if hue is None else _fmt_hue(hue, g)
        ax.plot(xs, sub[y].to_numpy(dtype=float) * 100, marker="o", ms=4, color=color, label=label)
        if ci is not None and ci[0] in sub and ci[1] in sub:
            ax.fill_between(
                xs,
                sub[ci[0]].to_numpy(dtype=float) * 100,
                sub[ci[1]].to_numpy(dtype=float) * 100,
                color=color,
                alpha=0.15,
                linewidth=0,
            )
    if log_x:
        ax.set_xscale("log")
        ticks = sorted(dict.fromkeys(table[x].astype(float)))
        ax.set_xticks(ticks, _spaced_labels(ticks))
        ax.minorticks_off()
    ax.set_ylim(-2, 102)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _title(ax, title)
    _style(ax)
    if hue is not None:
        ax.legend(title=hue_label or _heading(hue), fontsize=8)
    return fig


def _spaced_labels(ticks: list[float], min_ratio: float = 1.3) -> list[str]:
    # on a log axis every tick is labelled; a label too close to the one before it (20 and 25,
    # 100 and 125) drops to a second line so the two do not overlap
    labels: list[str] = []
    last = -math.inf
    for t in ticks:
        if t > 0 and (last <= 0 or t / last >= min_ratio):
            labels.append(_fmt_value(t))
            last = t
        else:
            labels.append("\n" + _fmt_value(t))
    return labels


def _heading(column: str) -> str:
    # a legend title from a column name: "margin_mode" -> "Margin mode"
    return column.replace("_", " ").capitalize()


def _fmt_hue(hue: str, value: object) -> str:
    return _fmt_stop(value) if hue == "stop_loss" else _fmt_value(value)


def plot_bars(
    table: pd.DataFrame,
    *,
    x: str,
    y: str,
    title: str,
    xlabel: str,
    ylabel: str,
    hue: str | None = None,
) -> Figure:
    """Return grouped bars of ``y`` by ``x`` (one bar colour per ``hue`` value)."""
    fig = _figure(7.2, 3.8)
    ax = fig.subplots()
    xs = sorted(dict.fromkeys(table[x]), key=_sort_key)
    groups: list[object] = (
        [_ALL] if hue is None else sorted(dict.fromkeys(_key(v) for v in table[hue]), key=_sort_key)
    )
    width = 0.8 / len(groups)
    # two groups (long, short) in the same blue and red as the survival lines
    colors = _colors(len(groups), "viridis") if len(groups) > 2 else _TWO[: len(groups)]
    for k, (g, color) in enumerate(zip(groups, colors, strict=True)):
        sub = _subset(table, hue, g)
        heights = [float(sub.loc[sub[x] == v, y].sum()) for v in xs]
        pos = np.arange(len(xs)) + (k - (len(groups) - 1) / 2) * width
        label = None if hue is None else _fmt_value(g)
        ax.bar(pos, heights, width=width, color=color, label=label)
    from matplotlib.ticker import MaxNLocator

    ax.set_xticks(range(len(xs)), [_fmt_value(v) for v in xs])
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _title(ax, title)
    _style(ax)
    if hue is not None:
        ax.legend(title=_heading(hue), fontsize=8)
    return fig


def plot_account_survival_and_loss(
    table: pd.DataFrame,
    losses: Sequence[F64Array],
    *,
    facet: str = "legs",
    x: str = "leverage",
    hue: str = "margin_mode",
    title: str = "Survival and wallet loss",
    xlabel: str = "Leverage [x]",
) -> Figure:
    """Return, per ``facet`` value (a row of panels), survival (left) and loss (right) by ``x``.

    ``table`` has ``facet``, ``x``, ``hue``, ``survival``, ``ci_low`` and ``ci_high`` (fractions);
    ``losses[i]`` holds row ``i``'s per-entry losses (fractions of the starting wallet). Left:
    survival at the horizon per ``hue`` with its interval shaded. Right: the loss distribution
    per ``x`` and ``hue`` as boxes (quartiles, whiskers at the 5th and 95th percentiles, the
    median a line, the mean a diamond).
    """
    if len(losses) != len(table):
        raise ValueError(f"losses needs one array per table row ({len(table)}), was {len(losses)}")
    facets = list(dict.fromkeys(table[facet])) if facet in table else [None]
    hues = list(dict.fromkeys(table[hue])) if hue in table else [None]
    xs = sorted(dict.fromkeys(float(v) for v in table[x]))
    fig = _figure(12.0, 3.6 * len(facets) + 0.5)
    axes = fig.subplots(len(facets), 2, squeeze=False)
    palette = _TWO
    colors = palette[: len(hues)] if len(hues) <= 2 else _colors(len(hues), "viridis")
    width = 0.8 / len(hues)
    for row, fv in enumerate(facets):
        left, right = axes[row]
        in_facet = (
            np.ones(len(table), dtype=bool) if fv is None else (table[facet] == fv).to_numpy()
        )
        for k, (hv, color) in enumerate(zip(hues, colors, strict=True)):
            mask = in_facet & (True if hv is None else (table[hue] == hv).to_numpy())
            sub = table[mask].assign(_row=np.flatnonzero(mask)).sort_values(x)
            px = np.searchsorted(xs, sub[x].to_numpy(dtype=float))
            label = None if hv is None else _fmt_value(hv)
            left.plot(
                px,
                sub["survival"].to_numpy(dtype=float) * 100,
                marker="o",
                ms=4,
                color=color,
                label=label,
            )
            left.fill_between(
                px,
                sub["ci_low"].to_numpy(dtype=float) * 100,
                sub["ci_high"].to_numpy(dtype=float) * 100,
                color=color,
                alpha=0.15,
                linewidth=0,
            )
            data = [np.asarray(losses[int(r)], dtype=float) * 100 for r in sub["_row"]]
            keep = [j for j, d in enumerate(data) if d.size]
            if not keep:
                continue
            pos = px[keep] + (k - (len(hues) - 1) / 2) * width
            box = right.boxplot(
                [data[j] for j in keep],
                positions=pos,
                widths=width * 0.85,
                whis=(5, 95),
                showfliers=False,
                showmeans=True,
                patch_artist=True,
                manage_ticks=False,
                meanprops={
                    "marker": "D",
                    "markerfacecolor": "white",
                    "markeredgecolor": "black",
                    "markersize": 4,
                },
                medianprops={"color": "black", "linewidth": 1.2},
            )
            for patch in box["boxes"]:
                patch.set_facecolor(color)
                patch.set_alpha(0.55)
            right.plot([], [], color=color, linewidth=6, alpha=0.55, label=label)
        name = "" if fv is None else f"{fv}: "
        for ax in (left, right):
            ax.set_xticks(range(len(xs)), [_fmt_value(v) for v in xs])
            ax.set_xlim(-0.6, len(xs) - 0.4)
            ax.set_ylim(-2, 102)
            ax.set_xlabel(xlabel)
            _style(ax)
        left.set_ylabel("Survival at horizon [%]")
        _title(left, f"{name}not liquidated (any leg or the account)", fontsize=10)
        right.set_ylabel("Wallet lost by the horizon [%]")
        _title(right, f"{name}loss of the starting wallet", fontsize=10)
        if hues != [None]:
            left.legend(title=_heading(hue), fontsize=8)
            right.legend(title=_heading(hue), fontsize=8, loc="upper left")
    fig.suptitle(title + "  (boxes: quartiles, whiskers 5–95 %, diamond: mean)", fontsize=11)
    return fig


def plot_venue_crash_days(table: pd.DataFrame, *, title: str) -> Figure:
    """Return, per crash day (rows) and side (columns), the share liquidated by leverage per venue.

    ``table`` is ``survival.venues.compare_venues`` output for one stop-loss: ``day``, ``side``,
    ``leverage``, ``exchange``, ``n_open_at_day``, ``n_liquidated_on_day`` and
    ``liquidated_share``. Each bar is labelled ``liquidated/open``; no bar where none was open.
    """
    days = list(dict.fromkeys(table["day"]))
    sides = list(dict.fromkeys(table["side"]))
    venues = list(dict.fromkeys(table["exchange"]))
    xs = sorted(dict.fromkeys(float(v) for v in table["leverage"]))
    fig = _figure(4.2 * len(sides) + 0.6, 2.6 * len(days) + 0.8)
    axes = fig.subplots(len(days), len(sides), squeeze=False, sharey=True)
    palette = _TWO
    colors = palette if len(venues) <= 2 else _colors(len(venues), "viridis")
    width = 0.8 / len(venues)
    for r, day in enumerate(days):
        for c, side in enumerate(sides):
            ax = axes[r][c]
            here = table[(table["day"] == day) & (table["side"] == side)]
            for k, venue in enumerate(venues):
                sub = here[here["exchange"] == venue].set_index("leverage")
                pos = np.arange(len(xs)) + (k - (len(venues) - 1) / 2) * width
                share = [float(sub["liquidated_share"].get(v, np.nan)) * 100 for v in xs]
                ax.bar(pos, np.nan_to_num(share), width=width, color=colors[k],
                       label=venue if r == 0 and c == 0 else None)  # fmt: skip
                for x0, v in zip(pos, xs, strict=True):
                    if v in sub.index and sub.loc[v, "n_open_at_day"] > 0:
                        text = f"{sub.loc[v, 'n_liquidated_on_day']}/{sub.loc[v, 'n_open_at_day']}"
                        ax.text(x0, 2, text, rotation=90, ha="center", va="bottom", fontsize=6)
            ax.set_xticks(range(len(xs)), [_fmt_value(v) for v in xs])
            ax.set_ylim(0, 105)
            _title(ax, f"{day}, {side}", fontsize=9)
            if c == 0:
                ax.set_ylabel("Liquidated that day [%]")
            if r == len(days) - 1:
                ax.set_xlabel("Leverage [x]")
            _style(ax)
    fig.legend(loc="outside lower center", ncols=len(venues), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=12)
    return fig
