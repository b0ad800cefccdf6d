"""Session passwords, stored hashed: ``<data_dir>/credentials.json``, mode 0600.

Each entry is a scrypt hash (``cryptography``'s Scrypt: memory-hard, so guessing
costs memory as well as time) with its own random 16-byte salt and the
parameters it was made with, so they can be raised later without invalidating
stored hashes. Verification recomputes the hash and compares in constant time
(``Scrypt.verify``). Passwords themselves are never written anywhere.

    {"format": 1, "sessions": {"SECURE44": {"kdf": "scrypt", "n": 65536, "r": 8, "p": 1,
                                            "salt": "<base64>", "hash": "<base64>", "set_at": "2026-...Z"}}}

Costs (x86_64, this project's 2-core machine): n=2**16, r=8 uses 64 MiB and about
130 ms per hash; cryptography releases the GIL while hashing, so the gateway's
other threads keep running. The gateway verifies on the session thread of the
client logging on (a logon is rare), behind a per-source throttle and a limit of
concurrent verifications (gateway/security/auth.py).

The file is re-read when it changes (checked with one stat per logon), so
``fixgw credentials set`` takes effect on a running gateway at the next logon.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
from pathlib import Path

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from gateway.security.secretstore import SecretsError, check_private

FILE_NAME = "credentials.json"
FORMAT = 1
# scrypt parameters for new hashes: N (CPU/memory cost), r (block size), p (parallelism)
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 16, 8, 1
SALT_BYTES, HASH_BYTES = 16, 32
# never accept parameters that would take more than this to verify (a tampered file must not hang the gateway)
_MAX_MEMORY = 256 * 1024 * 1024
MIN_PASSWORD, MAX_PASSWORD = 12, 256


class CredentialsError(Exception):
    """The credentials file is unsafe, unreadable or malformed, or a password is unacceptable."""


def password_problem(password: str) -> str | None:
    """Why ``password`` cannot be used, or None."""
    if len(password) < MIN_PASSWORD:
        return f"a password needs at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"a password has at most {MAX_PASSWORD} characters"
    if not password.isprintable():
        return "a password must be printable text (no control characters: FIX cannot carry them)"
    return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> dict:
    """A new credential entry for ``password`` (a fresh random salt)."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = Scrypt(salt=salt, length=HASH_BYTES, n=n, r=r, p=p).derive(password.encode("utf-8"))
    return {"kdf": "scrypt", "n": n, "r": r, "p": p, "salt": _b64(salt), "hash": _b64(digest),
            "set_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _checked(name: str, entry: object, source: Path) -> dict:
    if not isinstance(entry, dict) or entry.get("kdf") != "scrypt":
        raise CredentialsError(f"{source}: entry {name} is not a scrypt credential")
    try:
        n, r, p = int(entry["n"]), int(entry["r"]), int(entry["p"])
        salt, digest = base64.b64decode(entry["salt"], validate=True), base64.b64decode(entry["hash"], validate=True)
    except (KeyError, ValueError, TypeError):
        raise CredentialsError(f"{source}: entry {name} is malformed") from None
    if n < 2 or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16 or 128 * r * n > _MAX_MEMORY \
            or len(salt) < 8 or len(digest) < 16:
        raise CredentialsError(f"{source}: entry {name} has unacceptable scrypt parameters or sizes")
    return {**entry, "n": n, "r": r, "p": p, "_salt": salt, "_hash": digest}


def verify_entry(entry: dict, password: str) -> bool:
    """Whether ``password`` matches a (checked) entry; constant-time comparison of the hashes."""
    kdf = Scrypt(salt=entry["_salt"], length=len(entry["_hash"]), n=entry["n"], r=entry["r"], p=entry["p"])
    try:
        kdf.verify(password.encode("utf-8"), entry["_hash"])
        return True
    except InvalidKey:
        return False


class CredentialStore:
    """The credentials file of one data directory. Thread-safe; re-reads the file when it changes."""

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / FILE_NAME
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._entries: dict[str, dict] = {}

    # ------------------------------------------------------------------ reading
    def _refresh(self) -> dict[str, dict]:
        """The entries, re-read if the file changed; raises CredentialsError for an unsafe or bad file."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            with self._lock:
                self._stamp, self._entries = None, {}
            return {}
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode, st.st_uid)
        with self._lock:
            if stamp == self._stamp:
                return self._entries
        try:
            check_private(self.path, "credentials file")
        except SecretsError as exc:
            raise CredentialsError(str(exc)) from None
        try:
            data = json.loads(self.path.read_text())
        except OSError as exc:
            raise CredentialsError(f"cannot read {self.path}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise CredentialsError(f"{self.path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("sessions"), dict):
            raise CredentialsError(f"{self.path}: not a fixgw credentials file (format {FORMAT})")
        entries = {name: _checked(name, e, self.path) for name, e in data["sessions"].items()}
        with self._lock:
            self._stamp, self._entries = stamp, entries
        return entries

    def check(self) -> None:
        """Raise CredentialsError if the file is unsafe or malformed (start-up calls this)."""
        self._refresh()

    def has(self, session: str) -> bool:
        return session in self._refresh()

    def verify(self, session: str, password: str) -> bool | None:
        """True/False, or None when the session has no credential. Slow on purpose (one scrypt)."""
        entry = self._refresh().get(session)
        if entry is None:
            return None
        return verify_entry(entry, password)

    def list(self) -> list[dict]:
        """Per session: name, kdf and parameters, when it was set. Never the salt or the hash."""
        return [{"session": name, "kdf": e["kdf"], "n": e["n"], "r": e["r"], "p": e["p"],
                 "set_at": e.get("set_at", "")} for name, e in sorted(self._refresh().items())]

    # ------------------------------------------------------------------ writing
    def set(self, session: str, password: str) -> None:
        problem = password_problem(password)
        if problem is not None:
            raise CredentialsError(problem)
        entry = hash_password(password)
        self._rewrite(lambda sessions: sessions.__setitem__(session, entry))

    def delete(self, session: str) -> bool:
        found = []

        def drop(sessions: dict) -> None:
            found.append(sessions.pop(session, None) is not None)
        self._rewrite(drop)
        return found[0]

    def _rewrite(self, change) -> None:
        """Apply ``change`` to the stored entries and replace the file atomically (0600, then rename)."""
        current = self._refresh()
        sessions = {name: {k: v for k, v in e.items() if not k.startswith("_")} for name, e in current.items()}
        change(sessions)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{FILE_NAME}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"format": FORMAT, "sessions": sessions}, f, indent=1, sort_keys=True)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
