"""docs/STYLE.md names what exists: the files of its package layout, the enum and record names it
lists, the test files it cites and the CLI commands it shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import backtester.engine.enums as enums
import backtester.engine.records as records
from backtester.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
STYLE = (ROOT / "docs" / "STYLE.md").read_text(encoding="utf-8")
_NAME = re.compile(r"^[\w.]+(\.py|/)$")


def _layout_paths() -> list[str]:
    """Paths of the §2 layout tree: each line's leading name (.py or /), 2 spaces per level."""
    block = STYLE.split("## 2. Package layout", 1)[1].split("```", 2)[1]
    parents: list[str] = []
    out = []
    for line in block.splitlines():
        if not line.strip():
            continue
        depth = (len(line) - len(line.lstrip(" "))) // 2
        names = []
        for token in line.split():  # "html.py, sweep.py  the pages": a comma joins the next name
            if not _NAME.match(token.rstrip(",")):
                break
            names.append(token.rstrip(","))
            if not token.endswith(","):
                break
        if not names or depth > len(parents):
            continue  # a description's continuation line
        parents = parents[:depth]
        out += ["/".join([*parents, n]) for n in names]
        if names[-1].endswith("/"):
            parents.append(names[-1].rstrip("/"))
    return out


def test_the_layout_scan_reads_nested_files() -> None:
    paths = _layout_paths()
    assert {"backtester/engine/kernel.py", "backtester/reports/html.py", "tests/"} <= set(paths)


@pytest.mark.parametrize("path", _layout_paths())
def test_every_file_of_the_package_layout_exists(path: str) -> None:
    assert (ROOT / path).exists(), f"docs/STYLE.md §2 lists {path}, which does not exist"


def test_the_listed_enums_and_record_dtypes_exist() -> None:
    line = next(ln for ln in STYLE.splitlines() if "enums.py" in ln and "IntEnum" in ln)
    rest = STYLE.split(line, 1)[1].splitlines()[0]
    names = re.findall(r"\b([A-Z][A-Za-z]+)\b", line.split("kernels:")[1] + rest)
    assert len(names) >= 5
    missing = [n for n in names if not hasattr(enums, n)]
    assert not missing, f"docs/STYLE.md names enums that do not exist: {missing}"
    dtypes = re.findall(r"\b(\w+_dt)\b", STYLE)
    assert dtypes and all(hasattr(records, d) for d in dtypes), dtypes


def test_every_cited_test_file_exists() -> None:
    cited = set(re.findall(r"\b(test_\w+\.py)\b", STYLE))
    assert cited
    have = {p.name for p in (ROOT / "tests").rglob("test_*.py")}
    assert cited <= have, f"docs/STYLE.md cites missing test files: {sorted(cited - have)}"


def test_every_cli_command_shown_exists(capsys: pytest.CaptureFixture[str]) -> None:
    section = STYLE.split("## 10.", 1)[1]
    commands = {c.strip() for c in re.findall(r"`backtester ([a-z-]+)", section)}
    data_subs = set(re.findall(r"`data ([a-z-]+)`", section)) | set(
        re.findall(r"`backtester data ([a-z-]+)", section)
    )
    assert {"survival", "sweep", "report", "data"} <= commands
    parser = build_parser()
    for argv in [[c] for c in commands - {"data"}] + [["data", d] for d in data_subs]:
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args([*argv, "--help"])
        assert exit_.value.code == 0, argv
