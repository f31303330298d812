"""Column-vectorized signal generators, one module per strategy (STYLE.md §4.3), and the one loader.

Each module exposes ``PARAMS: dict[str, list]`` (its default grid) and
``signals(market: Market, grid: ParamGrid) -> Signals``: no I/O, no margin logic, no look-ahead.
Modules are imported lazily, so ``strategies.hold`` works after ``import strategies``.

``load(name_or_path)`` is the only way the library turns a strategy reference into a module (the
sweep config's ``[strategy] name``, the CLI's ``--strategy``, the sweep workers): a bundled name
(``"sma_cross"``) imports ``strategies.<name>``; anything else must be the path of a ``.py`` file
(``"my_strategy.py"``, relative to ``base``), which is executed from that file only. Nothing is
ever imported by module name from ``sys.path`` or the current directory, and ``sys.path`` is
never changed. ``params(name_or_path)`` reads a file's ``PARAMS`` literal without running the file,
so a config can be checked completely before any user code runs.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["available", "check", "get", "is_path", "load", "params", "resolve", "source_sha256"]

_NAMES = ("hold", "sma_cross", "breakout", "rsi_reversion", "funding_carry")

# modules loaded from files, by (resolved path, sha256 of the bytes executed)
_FILE_MODULES: dict[tuple[str, str], ModuleType] = {}


def available() -> tuple[str, ...]:
    """Return the names of the bundled strategies."""
    return _NAMES


def get(name: str) -> ModuleType:
    """Return the bundled strategy module called ``name`` (ConfigError with a suggestion)."""
    from backtester.errors import ConfigError, did_you_mean

    if name not in _NAMES:
        raise ConfigError(
            f"unknown strategy {name!r}{did_you_mean(name, _NAMES)}; for your own strategy give "
            f'its file, e.g. name = "{name.rsplit(".", 1)[-1]}.py" (relative to the config file)'
        )
    return importlib.import_module(f"backtester.strategies.{name}")


def is_path(reference: str | os.PathLike[str]) -> bool:
    """Return True if ``reference`` names a file (ends in ``.py`` or holds a path separator)."""
    text = os.fspath(reference)
    return text.endswith(".py") or "/" in text or os.sep in text or isinstance(reference, Path)


def resolve(
    reference: str | os.PathLike[str], *, base: str | os.PathLike[str] | None = None
) -> Path:
    """Return the absolute path of a strategy file reference (ConfigError if it is not one).

    A relative path is taken relative to ``base`` (the config file's folder; default: the
    current directory).
    """
    from backtester.errors import ConfigError

    text = os.fspath(reference)
    if not is_path(reference):
        get(text)  # a bundled name is not a file: ConfigError with a suggestion
        raise ConfigError(f"strategy {text!r} is a bundled strategy, not a file")
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = Path(base if base is not None else os.getcwd()) / path
    path = path.resolve()
    if path.suffix != ".py":
        raise ConfigError(f"strategy file {text!r} must be a .py file, was {str(path)!r}")
    if not path.is_file():
        raise ConfigError(
            f"strategy file {text!r} does not exist (looked for {str(path)!r}); check the path "
            "(a relative path is relative to the config file)"
        )
    return path


def _read(path: Path, shown: str) -> bytes:
    from backtester.errors import ConfigError

    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"strategy file {shown!r} cannot be read ({exc.strerror or exc}); check its permissions"
        ) from exc


def source_sha256(
    reference: str | os.PathLike[str], *, base: str | os.PathLike[str] | None = None
) -> str:
    """Return the sha256 of the strategy's source file (the module file of a bundled name)."""
    if not is_path(reference):
        module = get(os.fspath(reference))
        path = Path(str(module.__file__))
    else:
        path = resolve(reference, base=base)
    return hashlib.sha256(_read(path, os.fspath(reference))).hexdigest()


def _static_params(source: bytes, shown: str) -> dict[str, list[Any]]:
    # the file's top-level ``PARAMS = {...}`` literal, read without executing anything
    from backtester.errors import ConfigError

    fix = (
        'write PARAMS as a top-level literal, e.g. PARAMS = {"lookback": [24, 72]}, so a config '
        "can be checked before the file runs"
    )
    try:
        tree = ast.parse(source, filename=shown)
    except (SyntaxError, ValueError) as exc:  # ValueError: NUL bytes
        line = getattr(exc, "lineno", None)
        where = f" (line {line}: {getattr(exc, 'msg', exc)})" if line else f" ({exc})"
        raise ConfigError(f"strategy file {shown!r} is not valid Python{where}; fix it") from None
    values = [v for v in map(_params_value, tree.body) if v is not None]
    if len(values) != 1:
        found = "no PARAMS" if not values else f"{len(values)} PARAMS assignments"
        raise ConfigError(f"strategy file {shown!r} has {found}; {fix}")
    try:
        value = ast.literal_eval(values[0])
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ConfigError(
            f"strategy file {shown!r}: PARAMS at line {values[0].lineno} is computed, not a "
            f"literal; {fix}"
        ) from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, list) for k, v in value.items()
    ):
        raise ConfigError(
            f"strategy file {shown!r}: PARAMS must be a dict of name -> list of values, was "
            f"{value!r:.80}; {fix}"
        )
    return value


def _params_value(node: ast.stmt) -> ast.expr | None:
    # the value of a top-level ``PARAMS = ...`` or ``PARAMS: T = ...``
    if isinstance(node, ast.Assign) and any(
        isinstance(t, ast.Name) and t.id == "PARAMS" for t in node.targets
    ):
        return node.value
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.value if node.target.id == "PARAMS" else None
    return None


def params(
    reference: str | os.PathLike[str], *, base: str | os.PathLike[str] | None = None
) -> dict[str, list[Any]]:
    """Return the strategy's default grid ``PARAMS`` without running a user file.

    A bundled strategy is imported; a file's ``PARAMS`` must be a top-level literal, read with
    ``ast.literal_eval`` (ConfigError naming the file otherwise).
    """
    if not is_path(reference):
        module = get(os.fspath(reference))
        return {name: list(values) for name, values in module.PARAMS.items()}
    path = resolve(reference, base=base)
    return _static_params(_read(path, os.fspath(reference)), os.fspath(reference))


def check(strategy: Any, name: str | None = None) -> None:
    """Raise ConfigError unless ``strategy`` has ``PARAMS`` (a dict) and a callable ``signals``."""
    from backtester.errors import ConfigError

    if not isinstance(getattr(strategy, "PARAMS", None), dict) or not callable(
        getattr(strategy, "signals", None)
    ):
        subject = "strategy" if name is None else f"strategy {name!r}"
        raise ConfigError(
            f"{subject} must be a module or object with PARAMS (a dict of lists) and "
            f"signals(market, grid), was {strategy!r:.80}; see docs/writing-a-strategy.md"
        )


def load(
    reference: str | os.PathLike[str],
    *,
    base: str | os.PathLike[str] | None = None,
    sha256: str | None = None,
) -> ModuleType:
    """Return the strategy module for a bundled name or a ``.py`` file path.

    Parameters
    ----------
    reference : str or PathLike
        A bundled strategy name (see ``available()``) or the path of a ``.py`` file.
    base : str or PathLike, optional
        The folder a relative path is relative to (the config file's; default: the current
        directory).
    sha256 : str, optional
        The expected sha256 of the source file: a file whose content differs is refused (a
        resumed or distributed sweep must run the code it started with).

    Raises
    ------
    ConfigError
        For an unknown name, a missing or unreadable file, a file that fails to import, lacks
        ``PARAMS``/``signals``, or whose content differs from ``sha256``.
    """
    from backtester.errors import BacktesterError, ConfigError

    shown = os.fspath(reference)
    if not is_path(reference):
        module = get(shown)
        path = Path(str(module.__file__))
        data: bytes | None = None
    else:
        path = resolve(reference, base=base)
        data = _read(path, shown)
    if sha256 is not None:
        digest = hashlib.sha256(data if data is not None else _read(path, shown)).hexdigest()
        if digest != sha256:
            raise ConfigError(
                f"strategy {shown!r} changed since the sweep started (source sha256 "
                f"{digest[:12]} != {sha256[:12]}); restore the original file or start a new run"
            )
    if data is None:
        check(module, shown)
        return module
    digest = hashlib.sha256(data).hexdigest()
    key = (str(path), digest)
    if key in _FILE_MODULES:
        return _FILE_MODULES[key]
    declared = _static_params(data, shown)
    name = f"backtester.strategies.file.{path.stem}"
    spec = importlib.util.spec_from_loader(name, loader=None, origin=str(path))
    if spec is None:  # pragma: no cover - spec_from_loader always returns a spec here
        raise ConfigError(f"strategy file {shown!r} cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(path)
    sys.modules[name] = module  # dataclasses and pickle look a module up by its name
    try:
        # the bytes hashed above are the bytes executed: the file cannot change in between
        exec(compile(data, str(path), "exec"), module.__dict__)
    except BacktesterError:
        sys.modules.pop(name, None)
        raise
    except Exception as exc:
        sys.modules.pop(name, None)
        raise ConfigError(
            f"strategy file {shown!r} failed to import ({type(exc).__name__}: {exc}); fix the file"
        ) from exc
    check(module, shown)
    if declared != module.PARAMS:
        raise ConfigError(
            f"strategy file {shown!r}: PARAMS changed while the file ran; keep PARAMS a plain "
            "literal that the module does not modify"
        )
    _FILE_MODULES[key] = module
    return module


def __getattr__(name: str) -> ModuleType:
    if name in _NAMES:
        return importlib.import_module(f"backtester.strategies.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
