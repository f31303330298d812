"""Per-column keys of a run held as distinct keys + one index per column (issue 12, part 4)."""

from __future__ import annotations

import numpy as np

from backtester.engine.run import _ColumnKeys


def test_column_keys_index_and_groups_like_a_list() -> None:
    # Arrange: settings keyed a, b, a; columns repeat settings 2, 1, 0, 0
    keys = [("binanceusdm", None), ("okx", None), ("binanceusdm", None)]
    rep = np.array([2, 1, 0, 0], dtype=np.int64)
    # Act
    ck = _ColumnKeys.repeat(keys, rep)
    # Assert: the same per-column keys a list would give, one stored copy of each
    as_list = [keys[int(s)] for s in rep]
    assert len(ck) == 4 and [ck[c] for c in range(4)] == as_list and ck[1:3] == as_list[1:3]
    assert ck.uniq == [("binanceusdm", None), ("okx", None)]
    groups = ck.groups()
    assert list(groups) == [("binanceusdm", None), ("okx", None)]  # first-seen column order
    assert groups[("binanceusdm", None)].tolist() == [0, 2, 3]
    assert groups[("okx", None)].tolist() == [1]
