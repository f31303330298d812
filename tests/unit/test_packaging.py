"""Packaging: configs/ ships in the wheel, strategies live under backtester (old name deprecated)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from backtester.sweep.bundled import bundled_configs, config_dir, find_config

REPO = Path(__file__).resolve().parents[2]


def test_the_wheel_carries_configs_where_the_loader_looks() -> None:
    # Checked by hand with `pip wheel --no-deps . -w /tmp/w`: backtester/_configs/hold.toml etc.
    build = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    assert build["targets"]["wheel"]["force-include"]["configs"] == "backtester/_configs"
    assert "backtester" in build["targets"]["wheel"]["packages"]


def test_bundled_configs_are_the_clone_s_configs_folder() -> None:
    assert config_dir() == REPO / "configs"
    assert bundled_configs() == tuple(sorted(p.name for p in (REPO / "configs").glob("*.toml")))
    assert "hold.toml" in bundled_configs()


def test_a_readme_config_path_is_found_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no configs/ here, as after `pip install .`
    assert find_config("configs/hold.toml") == REPO / "configs" / "hold.toml"
    assert find_config("hold.toml") == REPO / "configs" / "hold.toml"
    # another folder, or a name that is not bundled, stays as typed (the loader then says so)
    assert find_config("other/hold.toml") == Path("other/hold.toml")
    assert find_config("configs/nope.toml") == Path("configs/nope.toml")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "hold.toml").write_text("# mine\n")
    assert find_config("configs/hold.toml") == Path("configs/hold.toml")  # the user's wins


def test_import_strategies_still_works_with_a_deprecation_warning() -> None:
    code = (
        "import strategies, backtester.strategies as new; "
        "print(strategies is new, strategies.hold.__name__)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-W", "always::DeprecationWarning", "-c", code],
        capture_output=True, text=True, env=env, check=True, cwd=REPO,
    )  # fmt: skip
    assert out.stdout.split() == ["True", "backtester.strategies.hold"]
    assert "DeprecationWarning: the top-level 'strategies' package is deprecated" in out.stderr


def test_the_package_itself_never_imports_the_old_name() -> None:
    offenders = [
        str(p.relative_to(REPO))
        for folder in ("backtester", "tests", "benchmarks", "scripts")
        for p in (REPO / folder).rglob("*.py")
        if any(
            line.strip().startswith(("import strategies", "from strategies "))
            for line in p.read_text(encoding="utf-8").splitlines()
        )
    ]
    assert offenders == []
