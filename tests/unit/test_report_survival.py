"""The survival report: files, run.json, tables as CSV/parquet, and rendering in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

import backtester as bt
from tests.unit.test_survival_helpers import fake_study

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

# appended to a copy of the page: marks <body> with "<images>:<loaded>" once the page has loaded,
# and with "<page overflows>:<tables wider than the text column>" (a table that needs its
# scroll bar, or a page wider than the window, is a table a reader cannot see whole)
_PROBE = """
<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.setAttribute('data-images', imgs.length + ':' + ok.length);
  var sharp = imgs.filter(function (i) {
    return i.naturalWidth >= 2 * Number(i.getAttribute('width')) - 1; });
  document.body.setAttribute('data-sharp', String(sharp.length));
  var page = document.documentElement.scrollWidth > window.innerWidth ? 1 : 0;
  var column = document.body.clientWidth;
  var wide = Array.prototype.slice.call(document.querySelectorAll('table')).filter(
    function (t) { t.closest('details') && (t.closest('details').open = true);
                   return t.getBoundingClientRect().width > column + 1; });
  document.body.setAttribute('data-overflow', page + ':' + wide.length);
});
</script>
"""


BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _chromium() -> str:
    """Return the headless browser's path; skip without one, except under CI=true (fail)."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    missing = f"no headless Chromium on PATH (looked for {', '.join(BROWSERS)})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{missing}, and CI=true requires it: apt-get install -y chromium")
    pytest.skip(f"{missing}: apt-get install -y chromium to render the report (CI requires it)")


def render_image_counts(index: Path, tmp_path: Path) -> tuple[int, int]:
    """Return (images on the page, images loaded) as rendered by headless Chromium."""
    n_images, n_loaded, _, _ = render_page(index, tmp_path)
    return n_images, n_loaded


def render_page(index: Path, tmp_path: Path) -> tuple[int, int, int, int]:
    """Return (images, images loaded, page wider than the window, tables wider than the text).

    Rendered by headless Chromium in a 1280-pixel window, with folded tables unfolded.
    """
    probe = index.with_name("_probe.html")
    probe.write_text(index.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"))
    out = subprocess.run(
        [
            _chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--virtual-time-budget=15000",
            "--window-size=1280,900",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    probe.unlink()
    match = re.search(r'data-images="(\d+):(\d+)"', out.stdout)
    assert match, f"page did not finish loading in Chromium: {out.stderr[-500:]}"
    wide = re.search(r'data-overflow="(\d+):(\d+)"', out.stdout)
    assert wide, f"page did not finish loading in Chromium: {out.stderr[-500:]}"
    sharp = re.search(r'data-sharp="(\d+)"', out.stdout)
    # every figure is drawn at twice the pixels it is shown at (sharp on a high-density screen)
    assert sharp and int(sharp.group(1)) == int(match.group(1)), "a figure is not 2x"
    return int(match.group(1)), int(match.group(2)), int(wide.group(1)), int(wide.group(2))


@pytest.fixture(scope="module")
def small_market(btc_1h: bt.Market) -> bt.Market:
    return btc_1h.slice("2022-01-01", "2023-01-01")


def test_report_writes_page_tables_and_run_json(small_market: bt.Market, tmp_path: Path) -> None:
    # Arrange
    study = fake_study(small_market)
    # Act
    index = Path(study.report(str(tmp_path / "rep"), comparisons=False))
    # Assert: the page, its figures and tables
    out = index.parent
    html = index.read_text(encoding="utf-8")
    images = re.findall(r'<img src="([^"]+)"', html)
    assert {"figures/survival_heatmap.png", "figures/km_curves_long.png"} <= set(images)
    assert any("liquidation_histograms" in i for i in images)
    for rel in images:
        assert (out / rel).stat().st_size > 5_000
    assert "Survival = share of positions NOT liquidated" in html
    table = study.table().reset_index()
    csv = pd.read_csv(out / "tables" / "survival.csv")
    pq = pd.read_parquet(out / "tables" / "survival.parquet")
    assert list(csv.columns) == list(table.columns) == list(pq.columns)
    pd.testing.assert_series_equal(pq["survival"], table["survival"])
    info = json.loads((out / "run.json").read_text())
    assert info["version"] == bt.__version__
    assert info["market"]["sha256"] == small_market.fingerprint()
    assert info["settings"]["grid"]["stop_loss"] == [None, 0.05]
    assert info["n_entries"] == study.n_entries


def test_full_report_renders_in_chromium(small_market: bt.Market, tmp_path: Path) -> None:
    """The real report (engine runs and every comparison) renders with every image loaded."""
    # Arrange
    study = bt.survival_study(
        small_market, side="both", leverage=(2, 10, 50), stop_loss=(None, 0.05), n_boot=100
    )
    # Act
    index = Path(study.report(str(tmp_path / "full")))
    # Assert: the figures and a figure for each comparison
    figures = {p.stem for p in (index.parent / "figures").glob("*.png")}
    assert {"survival_heatmap", "km_curves_long", "km_curves_short", "equity_fan"} <= figures
    assert {
        "cmp_leverage_ladder",
        "cmp_stop_loss",
        "cmp_position_size",
        "cmp_isolated_vs_cross",
        "cmp_mark_vs_last",
        "cmp_owe_money",
        "cmp_funding",
    } <= figures
    n_images, n_loaded, page_wider, wide_tables = render_page(index, tmp_path)
    assert n_images == len(figures)
    assert n_loaded == n_images
    assert (page_wider, wide_tables) == (0, 0)
    # every table a person reads has labelled headers: no raw snake_case, no NaT, no "5.0"
    html = index.read_text(encoding="utf-8")
    headers = re.findall(r"<th>([^<]*)</th>", html)
    assert headers and not [h for h in headers if "_" in h]
    assert "<td>NaT</td>" not in html
    for table in re.findall(r"<table.*?</table>", html, flags=re.S):  # leverage 5, never 5.0
        names = re.findall(r"<th>([^<]*)</th>", table)
        rows = [
            re.findall(r"<td>([^<]*)</td>", r)
            for r in re.findall(r"<tr>(.*?)</tr>", table, flags=re.S)
        ]
        for k, name in enumerate(names):
            if name.startswith("Leverage"):
                assert not [r[k] for r in rows if r and r[k].endswith(".0")], name


def test_sweep_report_renders_in_chromium(tmp_path: Path) -> None:
    """The sweep report of a real (short) run: every image loads and no table is too wide."""
    # Arrange: the example sma_cross sweep cut to three months
    import tomllib

    from backtester.cli.sweep import _write_report
    from backtester.sweep import run_config

    configs = Path(__file__).resolve().parents[2] / "configs"
    data = tomllib.loads((configs / "sma_cross.toml").read_text())
    data["market"].update(symbols=["BTC/USDT:USDT"], start="2025-01-01", end="2025-04-01")
    run = run_config(data, out=tmp_path / "run", workers=1)
    # Act
    index = _write_report(run, str(tmp_path / "report"), None, 10)  # what `backtester report` does
    # Assert
    n_images, n_loaded, page_wider, wide_tables = render_page(Path(index), tmp_path)
    assert n_images >= 3 and n_loaded == n_images
    assert (page_wider, wide_tables) == (0, 0)


def test_an_okx_report_says_what_its_data_cannot_show(tmp_path: Path) -> None:
    # the bundled OKX BTC 2022 bars: no mark bars, no funding events in range
    m = bt.load_market("BTC/USDT:USDT", exchange="okx", mark="last").slice(
        "2022-05-01", "2022-09-01"
    )
    study = bt.survival_study(m, leverage=(2, 10), stop_loss=(None, 0.05), n_boot=50)
    page = Path(study.report(str(tmp_path / "okx"))).read_text(encoding="utf-8")
    assert "this market has no mark-price bars (its last price stands in for the mark)" in page
    assert "this market has no funding events in its range" in page
    assert "On OKX the insurance fund" in page and "Binance" not in page
    assert "judged on the last price (standing in for the mark)" in page
