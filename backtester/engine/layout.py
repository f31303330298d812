"""Rows of the kernel's per-column parameter arrays, laid out from the settings spec (layer: engine).

``fparams (FParam.N, n_cols)`` holds the float settings and ``iparams (IParam.N, n_cols)`` the
integer ones, one row per setting whose spec names a ``kernel`` row kind, in ``RunConfig`` field
order, named by the spec's ``slot``. ``IParam.CONVENTION`` is the one row not set by a setting:
``engine.run`` fills it from the exchange profile the ``exchange`` setting selects.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from backtester.config import SETTINGS

__all__ = ["FLOAT_ROWS", "INT_ROWS", "FParam", "IParam"]

#: setting name -> row, for the float and the int parameter arrays
FLOAT_ROWS: dict[str, int] = {
    s.name: k for k, s in enumerate(s for s in SETTINGS.values() if s.kernel == "float")
}
INT_ROWS: dict[str, int] = {
    s.name: k for k, s in enumerate(s for s in SETTINGS.values() if s.kernel == "int")
}
_DERIVED_INT_ROWS = ("CONVENTION",)


def _rows(name: str, rows: dict[str, int], derived: tuple[str, ...] = ()) -> Any:
    members = {SETTINGS[n].slot: k for n, k in rows.items()}
    members.update({d: len(rows) + j for j, d in enumerate(derived)})
    members["N"] = len(members)
    return IntEnum(name, members)


#: rows of ``fparams``: ``FParam.LEVERAGE``, ..., ``FParam.N`` (the row count)
FParam: Any = _rows("FParam", FLOAT_ROWS)
#: rows of ``iparams``: ``IParam.MARGIN_MODE``, ..., ``IParam.CONVENTION``, ``IParam.N``
IParam: Any = _rows("IParam", INT_ROWS, _DERIVED_INT_ROWS)
