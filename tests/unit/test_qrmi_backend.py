"""How the qrmi backend reads the qrmi library's errors (pure)."""

from __future__ import annotations

import pytest

from consumers.backends.qrmi import classify


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("error sending request for url (http://127.0.0.1:1/jobs)", (True, False)),
        ('Status: 503 Service Unavailable, Fail {"detail": "no owner"}', (True, False)),
        ('Status: 429 Too Many Requests, Fail {"detail": "backlog"}', (True, False)),
        ('Status: 403 Forbidden, Fail {"code": "SESSION_ENDED"}', (False, True)),
        ('Status: 401 Unauthorized, Fail {"code": "CREDENTIAL_EXPIRED"}', (False, True)),
        ('Status: 422 Unprocessable Entity, Fail {"code": "INVALID_SEQUENCE"}', (False, False)),
    ],
)
def test_errors_are_retryable_lapsed_or_final_by_the_status_in_their_text(
    message: str, expected: tuple[bool, bool]
) -> None:
    assert classify(RuntimeError(message)) == expected
