"""The rendering test's browser requirement: skipped without Chromium, failed under CI=true."""

from __future__ import annotations

import pytest

from tests.unit.test_report_survival import _chromium


def test_without_chromium_the_rendering_test_is_skipped_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Arrange: an empty PATH finds no browser; not on CI
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("CI", raising=False)
    # Act / Assert
    with pytest.raises(pytest.skip.Exception, match="no headless Chromium on PATH"):
        _chromium()


def test_under_ci_a_missing_chromium_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange
    monkeypatch.setenv("PATH", "")
    monkeypatch.setenv("CI", "true")
    # Act / Assert
    with pytest.raises(pytest.fail.Exception, match="CI=true requires it"):
        _chromium()
