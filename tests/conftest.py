"""Fixtures shared by every test layer.

A test fails when pmzfs logs a record at ERROR or above that the test did
not expect.  A test that expects one requests the ``expected_errors``
fixture.
"""

from __future__ import annotations

import logging

import pytest


class _ErrorCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def expected_errors(fail_on_error_logs):
    """Allow ERROR records in this test; returns the list they collect in, filled as they happen."""
    return fail_on_error_logs.records


@pytest.fixture(autouse=True)
def fail_on_error_logs(request):
    collector = _ErrorCollector()
    logger = logging.getLogger("pmzfs")
    logger.addHandler(collector)
    yield collector
    logger.removeHandler(collector)
    if "expected_errors" in request.fixturenames:
        return
    if collector.records:
        lines = "\n".join(f"{r.name}: {r.getMessage()}" for r in collector.records)
        pytest.fail(f"unexpected ERROR log records:\n{lines}")
