"""The one strategy loader (strategies.load): bundled names or explicit .py files, nothing else.

Security: a config's ``[strategy] name`` used to be imported as a module name with the current
directory first on ``sys.path``, so a file in the working directory ran even when the rest of the
config was rejected. These tests put hostile modules (they create a marker file when imported)
where the old loader would have found them and check that nothing runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from backtester import strategies
from backtester.errors import ConfigError
from backtester.sweep.config import load_spec, parse_spec

HOSTILE = """
from pathlib import Path
Path({marker!r}).write_text("imported")
PARAMS = {{"side": ["long"]}}
def signals(market, grid):
    raise RuntimeError("never called")
"""

GOOD = """
import numpy as np
from backtester.signals import Signals

PARAMS = {"side": ["long", "short"]}


def signals(market, grid):
    sides = grid.values("side")
    longs = np.zeros((market.n_bars, len(sides)), dtype=np.bool_)
    shorts = np.zeros_like(longs)
    for k, side in enumerate(sides):
        (longs if side == "long" else shorts)[:, k] = True
    return Signals(longs, None, shorts, None)
"""


def hostile(folder: Path, name: str) -> Path:
    marker = folder / f"{name}.imported"
    (folder / f"{name}.py").write_text(HOSTILE.format(marker=str(marker)))
    return marker


def test_a_module_name_in_the_cwd_is_never_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: evil.py in the working directory, named by a config
    monkeypatch.chdir(tmp_path)
    marker = hostile(tmp_path, "evil")
    config = {"market": {"symbols": ["BTC/USDT:USDT"]}, "strategy": {"name": "evil"}}
    # Act
    with pytest.raises(ConfigError) as info:
        parse_spec(config)
    # Assert: refused with the fix, and the module never ran
    assert "unknown strategy 'evil'" in str(info.value)
    assert 'name = "evil.py"' in str(info.value)
    assert not marker.exists()
    assert "evil" not in sys.modules


def test_cli_sweep_never_imports_from_the_cwd(tmp_path: Path) -> None:
    # a real `backtester sweep` process started in the folder that holds the hostile module
    marker = hostile(tmp_path, "evil")
    (tmp_path / "cfg.toml").write_text(
        '[market]\nsymbols = ["BTC/USDT:USDT"]\n[strategy]\nname = "evil"\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "backtester", "sweep", "cfg.toml", "--out", "run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "unknown strategy 'evil'" in proc.stderr
    assert not marker.exists()
    assert not (tmp_path / "run").exists()


def test_a_named_file_does_not_run_when_the_rest_of_the_config_is_rejected(
    tmp_path: Path,
) -> None:
    # Arrange: the file is named explicitly, but the config has an unknown engine key
    marker = hostile(tmp_path, "mine")
    config = tmp_path / "cfg.toml"
    config.write_text(
        '[market]\nsymbols = ["BTC/USDT:USDT"]\n[strategy]\nname = "mine.py"\n'
        "[engine]\nleverag = 3\n"
    )
    # Act / Assert: the error is about the config; PARAMS was read without running the file
    with pytest.raises(ConfigError, match="leverag"):
        load_spec(config)
    assert not marker.exists()


def test_a_valid_config_reads_params_without_running_the_file(tmp_path: Path) -> None:
    marker = hostile(tmp_path, "mine")
    config = tmp_path / "cfg.toml"
    config.write_text('[market]\nsymbols = ["BTC/USDT:USDT"]\n[strategy]\nname = "mine.py"\n')
    spec = load_spec(config)
    assert spec.grid == (("side", ("long",)),)
    assert not marker.exists()  # it runs only when the sweep itself starts


def test_a_relative_file_is_relative_to_the_config_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: the config and its strategy in one folder, the process elsewhere
    (tmp_path / "cfgs").mkdir()
    (tmp_path / "cfgs" / "two_sides.py").write_text(GOOD)
    (tmp_path / "cfgs" / "cfg.toml").write_text(
        '[market]\nsymbols = ["BTC/USDT:USDT"]\n[strategy]\nname = "two_sides.py"\n'
    )
    monkeypatch.chdir(tmp_path)
    # Act
    spec = load_spec("cfgs/cfg.toml")
    # Assert
    assert spec.grid == (("side", ("long", "short")),)
    module = strategies.load("cfgs/two_sides.py")
    assert module.PARAMS == {"side": ["long", "short"]}
    with pytest.raises(ConfigError, match=r"strategy file 'two_sides.py' does not exist"):
        strategies.load("two_sides.py")  # relative to the cwd here: not there


def test_sys_path_is_never_changed(tmp_path: Path) -> None:
    from backtester.cli import main

    (tmp_path / "cfg.toml").write_text(
        '[market]\nsymbols = ["BTC/USDT:USDT"]\n[strategy]\nname = "no_such"\n'
    )
    before = list(sys.path)
    assert main(["sweep", str(tmp_path / "cfg.toml"), "--out", str(tmp_path / "r")]) == 2
    assert sys.path == before


def test_load_file_strategy_and_its_checks(tmp_path: Path) -> None:
    # a good file loads (once per content); each kind of bad file is one line naming it
    good = tmp_path / "good.py"
    good.write_text(GOOD)
    module = strategies.load(good)
    assert strategies.load(str(good)) is module
    assert callable(module.signals)
    cases = {
        "syntax.py": ("def broken(:\n", r"is not valid Python \(line 1"),
        "noparams.py": ("def signals(m, g):\n    pass\n", "has no PARAMS"),
        "computed.py": (
            "PARAMS = {'w': list(range(3))}\ndef signals(m, g):\n    pass\n",
            "PARAMS at line 1 is computed, not a literal",
        ),
        "nosignals.py": ("PARAMS = {'w': [1]}\n", "must be a module or object with PARAMS"),
        "raises.py": ("PARAMS = {'w': [1]}\nraise ValueError('boom')\n", "failed to import"),
        "binary.py": ("PARAMS = {'w': [1]}\n\x00\n", "is not valid Python"),
    }
    for name, (text, expected) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError, match=expected) as info:
            strategies.load(tmp_path / name)
        assert "\n" not in str(info.value) and name in str(info.value)
    with pytest.raises(ConfigError, match=r"must be a \.py file"):
        (tmp_path / "notes.txt").write_text("x")
        strategies.load(str(tmp_path / "notes.txt"))


def test_a_changed_file_is_refused_when_its_hash_is_pinned(tmp_path: Path) -> None:
    path = tmp_path / "good.py"
    path.write_text(GOOD)
    digest = strategies.source_sha256(path)
    assert strategies.load(path, sha256=digest).PARAMS == {"side": ["long", "short"]}
    path.write_text(GOOD + "\n# edited\n")
    with pytest.raises(ConfigError, match="changed since the sweep started"):
        strategies.load(path, sha256=digest)


def test_bundled_names_still_load_and_suggest() -> None:
    assert strategies.load("sma_cross") is strategies.sma_cross
    assert strategies.params("hold") == {"side": ["long", "short"]}
    with pytest.raises(ConfigError, match="did you mean 'sma_cross'"):
        strategies.load("sma_cros")
    for name in strategies.available():  # bundled PARAMS are literals, like a user file's
        path = Path(str(strategies.get(name).__file__))
        assert strategies.params(str(path)) == strategies.get(name).PARAMS


def test_cli_survival_strategy_option_takes_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backtester.cli.survival import load_strategy

    monkeypatch.chdir(tmp_path)
    (tmp_path / "two_sides.py").write_text(GOOD)
    marker = hostile(tmp_path, "evil")
    assert load_strategy("./two_sides.py").PARAMS == {"side": ["long", "short"]}
    assert load_strategy("hold") is strategies.hold
    with pytest.raises(ConfigError, match="--strategy: unknown strategy 'evil'"):
        load_strategy("evil")
    assert not marker.exists()
