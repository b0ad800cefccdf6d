"""Secrets: the database password, the admin token, the journal's HMAC key, session passwords.

They come from the environment or from a secrets file, never from gateway.cfg.
The secrets file is TOML, one ``NAME = "value"`` per secret, named by
``secrets_file`` in gateway.cfg or the environment variable FIXGW_SECRETS_FILE:

    FIXGW_ADMIN_TOKEN = "..."
    FIXGW_JOURNAL_HMAC_KEY = "..."
    FIXGW_DATABASE_PASSWORD = "..."
    VENUE1_PASSWORD = "..."

An environment variable of the same name wins over the file. The file (like every
file that holds a secret: TLS private keys, the credentials file) must be readable
and writable by its owner only: ``check_private`` refuses anything else, naming
the file and the fix, and fixgw does not start.

One process-wide store: ``use_file`` is called once by ``gateway.config.load_config``;
``get`` is what the rest of the gateway reads secrets with.
"""
from __future__ import annotations

import os
import stat
import threading
import tomllib
from pathlib import Path

ADMIN_TOKEN = "FIXGW_ADMIN_TOKEN"
JOURNAL_HMAC_KEY = "FIXGW_JOURNAL_HMAC_KEY"
DATABASE_PASSWORD = "FIXGW_DATABASE_PASSWORD"
DATABASE_URL = "FIXGW_DATABASE_URL"


class SecretsError(Exception):
    """A secrets file (or key file) is unsafe or unreadable; the message names the file and the fix."""


def check_private(path: Path, what: str = "secrets file") -> None:
    """Refuse a file that its group or others may read or write, or that another user owns."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SecretsError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise SecretsError(f"cannot read {what} {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise SecretsError(f"{what} {path} is not a regular file")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise SecretsError(f"{what} {path} is accessible to its group or others (mode {mode:04o}); fixgw will "
                           f"not use it. Fix: chmod 600 {path}")
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        raise SecretsError(f"{what} {path} belongs to user id {st.st_uid}, not to the user running fixgw "
                           f"({os.geteuid()}). Fix: chown it to that user and chmod 600 {path}")


def read_file(path: Path) -> dict[str, str]:
    """The secrets in ``path`` (permissions checked first)."""
    check_private(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise SecretsError(f"cannot read secrets file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SecretsError(f"secrets file {path} is not valid TOML: {exc}") from None
    bad = [k for k, v in data.items() if not isinstance(v, str)]
    if bad:
        raise SecretsError(f"secrets file {path}: every entry must be NAME = \"text\"; not text: {', '.join(bad)}")
    return data


class _Store:
    def __init__(self) -> None:
        self.path: Path | None = None
        self.values: dict[str, str] = {}
        self.lock = threading.Lock()


_store = _Store()


def use_file(path: Path | None) -> None:
    """Read the process's secrets file (None: secrets come from the environment only)."""
    values = read_file(path) if path is not None else {}
    with _store.lock:
        _store.path, _store.values = path, values


def get(name: str, env: dict[str, str] | None = None) -> str | None:
    """A secret: the environment's (``env`` if given) if set and not empty, else the secrets file's, else None."""
    value = (os.environ if env is None else env).get(name)
    if value:
        return value
    with _store.lock:
        return _store.values.get(name) or None


def merged_env() -> dict[str, str]:
    """The secrets file's entries overlaid by the environment (for configuration lookups)."""
    with _store.lock:
        out = dict(_store.values)
    out.update({k: v for k, v in os.environ.items() if v})
    return out


def source() -> str:
    """Where secrets come from, for messages (never the secrets themselves)."""
    with _store.lock:
        return f"the environment and {_store.path}" if _store.path else "the environment"
