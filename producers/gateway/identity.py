"""Who is asking: the ``X-Munge-Cred`` of a request, decoded by munged, as a unix user.

Every request but ``GET /accessible`` (the qrmi client sends no credential there, nor does
Warden ask for one) must carry a fresh credential. munged decodes it (`brokers.libmunge`): a
replayed, expired, forged or unreadable credential is refused with 401, and so is one whose uid
has no user on this host (NSS: the same user database Slurm and the broker's MUNGE logins use).
The qrmi client makes a new credential for each request, so nothing is cached here.
"""

from __future__ import annotations

import pwd
from collections.abc import Callable
from dataclasses import dataclass

from brokers.libmunge import Refused
from brokers.munge import CredentialRefused, Identity
from producers.gateway.shapes import HttpError

Decoder = Callable[[str], Identity]
UserOf = Callable[[int], str | None]


def user_of(uid: int) -> str | None:
    """The name of unix user `uid` (None: the system does not know it)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


@dataclass(frozen=True)
class Caller:
    """A request's verified sender."""

    uid: int
    user: str


def verify(credential: str | None, decode: Decoder, users: UserOf = user_of) -> Caller:
    """The caller a credential proves.

    Raises:
        HttpError: 401 when the credential is missing, refused by munged, or names no user.
    """
    if not credential:
        raise HttpError(401, "Missing MUNGE credential", "CREDENTIAL_REQUIRED")
    try:
        identity = decode(credential)
    except Refused as exc:
        uid = exc.refusal.uid
        if exc.refusal.replayed:
            raise HttpError(401, "MUNGE credential replayed", "CREDENTIAL_REPLAYED", uid) from None
        if exc.refusal.expired:
            raise HttpError(401, "MUNGE credential expired", "CREDENTIAL_EXPIRED", uid) from None
        raise HttpError(401, f"MUNGE credential refused: {exc}", "CREDENTIAL_INVALID") from None
    except CredentialRefused as exc:
        raise HttpError(401, f"MUNGE credential refused: {exc}", "CREDENTIAL_INVALID") from None
    user = users(identity.uid)
    if user is None:
        raise HttpError(401, f"uid {identity.uid} has no user on this host", "UNKNOWN_UID")
    return Caller(identity.uid, user)
