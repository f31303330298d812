"""numba on-disk cache keyed on a file's backtester imports too (layer: engine, for all kernels).

numba's cache (``cache=True``) is keyed on the decorated function's own file only. A kernel that
inlines functions of another module, or freezes the values of constants it imports at compile
time (enums, parameter rows), would keep running the old compiled code after an edit of those
modules (or a git pull touching only them). :func:`cache_enabled` fixes that for a file:

- its dependencies are not a hand-kept list: they are every backtester module the file imports,
  followed through their own imports (:func:`dependency_files`), so a new import is covered;
- locators installed ahead of numba's own add ``(path, sha256)`` of each dependency to numba's
  stamp for the registered files' functions, so any edit of a dependency recompiles them.

That hooks numba internals (``numba.core.caching``), so the hook is verified on a probe function
first. If numba moved those internals (or ``NUMBA_CACHE_LOCATOR_CLASSES`` bypasses them),
:func:`cache_enabled` returns False: the caller compiles without the on-disk cache (correct, only
slower to start) and a ``BacktesterWarning`` says why, instead of trusting a cache that could be
stale. Usage, before the first decorated function::

    CACHE_ENABLED = cache_enabled(__file__)

    @njit(cache=CACHE_ENABLED)
    def f_nb(...): ...
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import warnings
from typing import Any

__all__ = ["cache_enabled", "cache_hook_in_effect", "dependency_files", "stamp_of"]

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../backtester


def _defer_numba_blas_import() -> None:
    # numba's arraymath asks at import whether a BLAS exists by importing scipy.linalg (its
    # _check_blas -> ensure_blas), ~0.2 s of every start for kernels that never use BLAS.
    # Answer it from the installed scipy's spec (no import) while arraymath loads; the real
    # ensure_blas stays in numba.np.linalg for any function that does use BLAS (np.dot), which
    # imports scipy when it compiles. A numba that moved these leaves things as they were.
    import importlib.util
    import sys

    if "numba.np.arraymath" in sys.modules:
        return
    try:
        from numba.np import linalg
    except ImportError:  # pragma: no cover - numba moved it
        return
    real = getattr(linalg, "ensure_blas", None)
    if real is None:  # pragma: no cover - numba moved it
        return

    def installed() -> None:
        if importlib.util.find_spec("scipy") is None:
            raise ImportError("scipy is not installed")

    linalg.ensure_blas = installed
    try:
        import numba.np.arraymath  # noqa: F401
    except Exception:  # pragma: no cover - left for numba to raise where it would
        pass
    finally:
        linalg.ensure_blas = real


_defer_numba_blas_import()

#: registered source file -> the dependency stamp its functions' cache entries carry
STAMPS: dict[str, tuple[tuple[str, bytes], ...]] = {}


# `from backtester.x import a, b` (also parenthesised over lines, with comments) and
# `import backtester.x`
_FROM = re.compile(
    r"^[ \t]*from[ \t]+(backtester(?:\.\w+)*)[ \t]+import[ \t]+(\((?:[^)#]|#[^\n]*)*\)|[^\n]*)",
    re.MULTILINE,
)
_IMPORT = re.compile(r"^[ \t]*import[ \t]+([^\n]*)", re.MULTILINE)


@functools.cache
def _imported_modules(path: str) -> frozenset[str]:
    # absolute imports of backtester modules anywhere in the file (also inside functions). A
    # text scan, not ast.parse (which cost ~0.1 s of every start): it may also pick up an
    # import-like line inside a string, which only adds a file to the stamp (never misses one;
    # tests/unit/test_engine.py checks it finds all that the ast finds in every module)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    names: set[str] = set()
    for module, what in _FROM.findall(text):
        names.add(module)
        names.update(f"{module}.{w}" for w in re.findall(r"\w+", what))
    for what in _IMPORT.findall(text):
        names.update(re.findall(r"\bbacktester(?:\.\w+)*", what))
    return frozenset(names)


def _module_file(name: str) -> str | None:
    # the source file of backtester module `name` (None for a name that is not a module)
    base = os.path.join(PACKAGE_ROOT, *name.split(".")[1:])
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(candidate):
            return candidate
    return None


def dependency_files(root: str) -> tuple[str, ...]:
    """Return the source files ``root`` depends on through backtester imports, sorted."""
    root = os.path.abspath(root)
    seen: set[str] = set()
    todo = [root]
    while todo:
        for name in _imported_modules(todo.pop()):
            path = _module_file(name)
            if path is not None and path not in seen:
                seen.add(path)
                todo.append(path)
    seen.discard(root)
    return tuple(sorted(seen))


def stamp_of(paths: tuple[str, ...]) -> tuple[tuple[str, bytes], ...]:
    """Return ``(path relative to the package, sha256 of the content)`` for each file."""
    out = []
    for path in paths:
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).digest()
        out.append((os.path.relpath(path, PACKAGE_ROOT).replace(os.sep, "/"), digest))
    return tuple(out)


class _DependencyStampMixin:
    _dependency_stamp: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def from_function(cls, py_func: Any, py_file: str) -> Any:
        stamp = STAMPS.get(os.path.abspath(py_file))
        if stamp is None:  # not a registered file: numba's own locators handle it
            return None
        self = super().from_function(py_func, py_file)  # type: ignore[misc]
        if self is not None:
            self._dependency_stamp = stamp
        return self

    def get_source_stamp(self) -> Any:
        return (super().get_source_stamp(), self._dependency_stamp)  # type: ignore[misc]


def _install_locators() -> str:
    # Put a dependency-stamping twin before each of numba's source-file locators; "" on success,
    # else why it could not.
    try:
        from numba.core import caching

        classes = caching.CacheImpl._locator_classes
        backed = caching._SourceFileBackedLocatorMixin
        if any(issubclass(c, _DependencyStampMixin) for c in classes):
            return ""
        out: list[Any] = []
        for base in classes:
            if issubclass(base, backed):
                out.append(type(f"Stamped{base.__name__}", (_DependencyStampMixin, base), {}))
            out.append(base)
        classes[:] = out
    except Exception as exc:  # any change of numba's internals lands here
        return f"{type(exc).__name__}: {exc}"
    return ""


def cache_hook_in_effect(dispatcher: Any) -> str:
    """Return "" if ``dispatcher``'s on-disk cache carries its file's dependency stamp, else why."""
    try:
        locator = dispatcher._cache._impl.locator
        stored = dispatcher._cache._cache_file._source_stamp
    except AttributeError as exc:
        return f"numba's cache has no {exc.name or 'expected attribute'}"
    if not isinstance(locator, _DependencyStampMixin):
        return f"numba chose the locator {type(locator).__name__}"
    want = STAMPS.get(os.path.abspath(dispatcher.py_func.__code__.co_filename))
    if not (isinstance(stored, tuple) and len(stored) == 2 and stored[1] == want):
        return "numba's cache index does not store the dependency stamp"
    return ""


def _probe_nb() -> int:
    return 0


_VERDICT: list[str] = []  # the probe's result, once per process


def cache_enabled(source_file: str) -> bool:
    """Register ``source_file``'s dependencies; return True if its kernels may use the cache."""
    import numba

    path = os.path.abspath(source_file)
    STAMPS[path] = stamp_of(dependency_files(path))
    if getattr(numba.config, "DISABLE_JIT", False):
        return False
    if not _VERDICT:
        STAMPS.setdefault(os.path.abspath(__file__), ())
        why = _install_locators()
        if not why:
            try:
                why = cache_hook_in_effect(numba.njit(cache=True)(_probe_nb))
            except Exception as exc:  # e.g. no writable cache directory
                why = f"{type(exc).__name__}: {exc}"
        _VERDICT.append(why)
    why = _VERDICT[0]
    if why:
        from backtester.errors import BacktesterWarning

        deps = ", ".join(p for p, _ in STAMPS[path])
        warnings.warn(
            f"{os.path.basename(path)} is compiled without numba's on-disk cache ({why}; numba "
            f"{numba.__version__}), because a cached kernel could be stale after an edit of "
            f"{deps}; every new process compiles it once (up to a minute). Use a numba version "
            "whose cache internals match, or report it",
            BacktesterWarning,
            stacklevel=2,
        )
        return False
    return True
