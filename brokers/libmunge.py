"""MUNGE credentials decoded in-process through ``libmunge`` (the C library munged's clients use).

`brokers.munge` runs the ``unmunge`` program, a fork and exec per credential: fine for a broker
login, too slow for an HTTP gateway that sees a fresh credential on every request (the qrmi
client makes one per request). `LibMunge.decode` asks munged through ``libmunge.so.2`` instead:
one socket round trip. The verdict is munged's own: a credential is accepted once (a replay is
refused), within its TTL (an expired or rewound one is refused), only if it decodes under the
site's key; refusals raise `munge.CredentialRefused` with munged's reason and error code.

Each decode uses a context of its own (``munge_ctx_t``), so one `LibMunge` serves many threads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass
from pathlib import Path

from brokers.munge import CredentialRefused, Identity, MungeError

# munge.h: option and error numbers (stable since MUNGE 0.5)
MUNGE_OPT_TTL = 4
MUNGE_OPT_ENCODE_TIME = 6
MUNGE_OPT_SOCKET = 8
EMUNGE_CRED_EXPIRED = 15
EMUNGE_CRED_REWOUND = 16
EMUNGE_CRED_REPLAYED = 17
MAX_CREDENTIAL_BYTES = 4096  # a credential of an empty payload is ~130 bytes


@dataclass(frozen=True)
class Refusal:
    """Why munged refused a credential (`code` is munged's error number; 0: not munged's)."""

    code: int
    reason: str
    uid: int | None = None  # munged still names the maker of a replayed or expired credential

    @property
    def replayed(self) -> bool:
        """The credential was decoded before."""
        return self.code == EMUNGE_CRED_REPLAYED

    @property
    def expired(self) -> bool:
        """The credential's TTL has passed (or its clock is ahead of ours)."""
        return self.code in (EMUNGE_CRED_EXPIRED, EMUNGE_CRED_REWOUND)


class Refused(CredentialRefused):
    """`munge.CredentialRefused` with munged's error code (`refusal`)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal


def _load() -> ctypes.CDLL:
    name = ctypes.util.find_library("munge") or "libmunge.so.2"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        raise MungeError(f"libmunge not found ({exc}); install MUNGE (libmunge2)") from exc
    lib.munge_ctx_create.restype = ctypes.c_void_p
    lib.munge_ctx_create.argtypes = []
    lib.munge_ctx_destroy.restype = None
    lib.munge_ctx_destroy.argtypes = [ctypes.c_void_p]
    lib.munge_strerror.restype = ctypes.c_char_p
    lib.munge_strerror.argtypes = [ctypes.c_int]
    lib.munge_decode.restype = ctypes.c_int
    lib.munge_decode.argtypes = [
        ctypes.c_char_p,
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.POINTER(ctypes.c_int),
        ctypes.POINTER(ctypes.c_uint),
        ctypes.POINTER(ctypes.c_uint),
    ]
    lib.munge_ctx_get.restype = ctypes.c_int  # variadic: argument types given per call
    lib.munge_ctx_set.restype = ctypes.c_int
    return lib


class LibMunge:
    """Decodes credentials through libmunge; `socket` names munged's socket (None: default).

    Raises:
        MungeError: libmunge is not installed.
    """

    def __init__(self, socket: Path | None = None) -> None:
        self._lib = _load()
        self._libc = ctypes.CDLL(None)
        self._socket = str(socket).encode() if socket is not None else None

    def decode(self, credential: str) -> Identity:
        """The identity that made `credential`; it cannot be decoded again after this.

        Raises:
            Refused: munged refused it (replayed, expired, invalid, munged unreachable...), or
                it is no credential at all (too long, not ASCII).
        """
        raw = _as_bytes(credential)
        lib = self._lib
        ctx = lib.munge_ctx_create()
        if not ctx:
            raise Refused(Refusal(0, "munge_ctx_create failed (out of memory)"))
        try:
            if self._socket is not None:
                lib.munge_ctx_set(
                    ctypes.c_void_p(ctx), MUNGE_OPT_SOCKET, ctypes.c_char_p(self._socket)
                )
            buf = ctypes.c_void_p()
            length = ctypes.c_int()
            uid = ctypes.c_uint()
            gid = ctypes.c_uint()
            rc = lib.munge_decode(
                raw,
                ctx,
                ctypes.byref(buf),
                ctypes.byref(length),
                ctypes.byref(uid),
                ctypes.byref(gid),
            )
            if buf.value:
                self._libc.free(buf)
            if rc != 0:
                reason = (lib.munge_strerror(rc) or b"munge error").decode(errors="replace")
                known = rc in (EMUNGE_CRED_EXPIRED, EMUNGE_CRED_REWOUND, EMUNGE_CRED_REPLAYED)
                raise Refused(Refusal(rc, reason, uid.value if known else None))
            encoded_at = ctypes.c_long()
            ttl = ctypes.c_int()
            lib.munge_ctx_get(ctypes.c_void_p(ctx), MUNGE_OPT_ENCODE_TIME, ctypes.byref(encoded_at))
            lib.munge_ctx_get(ctypes.c_void_p(ctx), MUNGE_OPT_TTL, ctypes.byref(ttl))
            return Identity(uid.value, gid.value, encoded_at.value, ttl.value)
        finally:
            lib.munge_ctx_destroy(ctx)


def _as_bytes(credential: str) -> bytes:
    if len(credential) > MAX_CREDENTIAL_BYTES:
        raise Refused(Refusal(0, f"credential longer than {MAX_CREDENTIAL_BYTES} bytes"))
    try:
        return credential.encode("ascii")
    except UnicodeEncodeError:
        raise Refused(Refusal(0, "credential is not ASCII")) from None
