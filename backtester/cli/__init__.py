"""Command-line entry point: the only code that reads argv or env, configures logging or exits.

While a command runs, it also sets the garbage collector's thresholds (``_few_collections``).

Each area registers its subcommands from its own module (``cli/data.py``, ``cli/rules.py``,
``cli/survival.py``, ``cli/sweep.py``) through a ``register(subparsers)`` function; handlers
only translate options into calls of the public Python API and format what it returns.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

from backtester.errors import BacktesterError, BacktesterWarning

# modules that contribute subcommands, in the order they appear in --help
_COMMAND_MODULES = (
    "backtester.cli.survival",
    "backtester.cli.data",
    "backtester.cli.rules",
    "backtester.cli.sweep",
)


class _OneLineParser(argparse.ArgumentParser):
    # a usage error is one line naming the option and where the help is, not argparse's whole
    # usage block (exit code 2, like every other bad input)
    def error(self, message: str) -> NoReturn:
        if message.endswith("expected one argument"):
            option = message.split(":")[0].removeprefix("argument ").split("/")[0]
            message += f" (a value starting with '-' is written {option}=VALUE)"
        self.exit(2, f"error: {self.prog}: {message}; see `{self.prog} --help`\n")

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        # an unknown option is judged by the subcommand it was given to: its own options, its
        # own help (argparse would report it at the top level, against every command's options)
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            argv = list(sys.argv[1:] if args is None else args)
            command = self._command(argv)
            unknown = [a.split("=")[0] for a in extra if a[:2] == "--"]
            message = f"unrecognized arguments: {' '.join(extra)}"
            if unknown:
                from backtester.errors import did_you_mean

                known = [o for o in _long_options(command) if o != unknown[0]]
                hint = did_you_mean(unknown[0], known)
                if unknown[0] in self._all_options():
                    message += f" ({unknown[0]} is not an option of `{command.prog}`)"
                elif hint.startswith("; did you mean"):
                    message += hint
            command.exit(2, f"error: {command.prog}: {message}; see `{command.prog} --help`\n")
        return parsed

    def _command(self, argv: list[str]) -> argparse.ArgumentParser:
        # the innermost subcommand parser the words of argv name ("backtester data list")
        parser: argparse.ArgumentParser = self
        for word in argv:
            subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            if subs and word in subs[0].choices:
                parser = subs[0].choices[word]
        return parser

    def _all_options(self) -> set[str]:
        # every long option of this parser and of all its subcommands, however deep
        out = set(_long_options(self))
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    if isinstance(sub, _OneLineParser):
                        out |= sub._all_options()
        return out


def _long_options(parser: argparse.ArgumentParser) -> list[str]:
    return sorted({o for a in parser._actions for o in a.option_strings if o[:2] == "--"})


def build_parser() -> argparse.ArgumentParser:
    """Return the full argument parser (used by ``main`` and by tests)."""
    from backtester import __version__

    parser = _OneLineParser(
        prog="backtester",
        description=(
            "Which leverage, stop-loss and position size survive on crypto perpetual futures? "
            "Run `backtester survival` for the default study on bundled BTC data."
        ),
    )
    parser.add_argument("--version", action="version", version=f"backtester {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="-v for INFO, -vv for DEBUG logs"
    )
    parser.add_argument(
        "--debug", action="store_true", help="print the full traceback on every error"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # an area not built yet must not break the others
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    # the library's warnings are for the user: one line, without a source location
    if issubclass(category, BacktesterWarning):
        print(f"warning: {message}", file=sys.stderr)
        return
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _configure_logging(verbosity: int) -> None:
    from backtester._redact import install_redaction

    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    # credentials never reach stderr, at any level (ccxt logs signed requests at DEBUG)
    install_redaction(logging.getLogger().handlers)


#: the cyclic garbage collector's thresholds while a command runs (Python's are 700, 10, 10)
GC_THRESHOLDS = (100_000, 20, 100)


@contextlib.contextmanager
def _few_collections() -> Iterator[None]:
    # A command imports pandas, numba and matplotlib (some 200,000 objects, all kept to the
    # end) and makes few reference cycles. With Python's thresholds the collector walked the
    # whole heap four times while those imports grew it, and young collections ran ~600
    # times: 0.2 s of a 2 s `backtester survival --no-report`, 0.4 s of the full report
    # (benchmarks/README.md). Young garbage is still collected, every 100,000 allocations; the
    # thresholds are restored after.
    old = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*old)


def console() -> NoReturn:
    """The ``backtester`` command: run :func:`main`, exit with its code.

    At exit the interpreter would walk every object once more to collect cycles (~0.15 s after
    a report); the process ends anyway, so its objects are frozen (left alone) first.
    """
    code = main()
    gc.freeze()
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (0 ok, 2 BacktesterError, 1 anything else)."""
    with _few_collections():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    warnings.showwarning = _show_warning
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code = handler(args)
    except BacktesterError as exc:
        if args.debug:
            traceback.print_exc()
        else:
            print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `backtester data list | head`: the reader left, not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception:
        traceback.print_exc()
        return 1
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    console()
