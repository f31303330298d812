"""Notebooks run top to bottom with the public API (executed here so they cannot rot)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_there_is_a_notebook() -> None:
    names = {p.name for p in NOTEBOOKS}
    assert {"eth_leverage_decision.ipynb", "accounts_isolated_vs_cross.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path: Path, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    # outputs are cleared before commit
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert errors == []
    imports = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "backtester." not in imports.replace("import backtester as bt", "")


def test_notebook_states_the_stop_semantics() -> None:
    # A stopped position survives to the horizon (it is not censored at the stop); the notebook
    # used to call a stop exit "censoring", contradicting the study and its report.
    text = "\n".join(
        c.source for p in NOTEBOOKS for c in nbformat.read(p, as_version=4).cells
    ).lower()
    assert "stop-loss exit is censoring" not in text
    assert "survives" in text and "only the horizon and the end of the data censor" in text
