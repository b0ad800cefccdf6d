"""Building quickfix SessionSettings in code, one place for every engine we run.

quickfix 1.16 notes that shape this module:
- An acceptor listens on every interface (there is no bind-address setting). The
  gateway checks each session's source addresses itself at logon (gateway/security/auth.py):
  quickfix's ``AllowedRemoteAddresses`` takes exact addresses only and refuses silently.
- quickfix keeps one process-wide SessionID -> Session map. Destroying an engine
  unregisters its SessionIDs, even if a newer engine registered the same ones, so
  drop every engine reference right after stopping it (never let the garbage
  collector destroy an old engine later).
- ``Acceptor.stop()``/``Initiator.stop()`` without force poll for logouts in whole
  seconds (up to 10 s). ``graceful_stop`` logs out, waits in small steps, then
  force-stops, so shutdown costs milliseconds when peers answer promptly.
"""
from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import quickfix as fix

from sessions.threadnames import named

# application version -> (BeginString, data dictionary settings)
_SPEC_DIR = Path(str(resources.files("fixspecs")))


SessionID = fix.SessionID  # for type hints above sessions/, which never imports quickfix itself


def spec_path(name: str) -> str:
    return str(_SPEC_DIR / name)


BEGIN_STRING = {"FIX.4.2": "FIX.4.2", "FIX.4.4": "FIX.4.4", "FIX.5.0": "FIXT.1.1"}


def dictionary_settings(version: str) -> dict[str, str]:
    if version == "FIX.4.2":
        return {"UseDataDictionary": "Y", "DataDictionary": spec_path("FIX42.xml")}
    if version == "FIX.4.4":
        return {"UseDataDictionary": "Y", "DataDictionary": spec_path("FIX44.xml")}
    if version == "FIX.5.0":
        return {
            "UseDataDictionary": "Y",
            "TransportDataDictionary": spec_path("FIXT11.xml"),
            "AppDataDictionary": spec_path("FIX50.xml"),
            "DefaultApplVerID": "FIX.5.0",
        }
    raise ValueError(f"unsupported FIX version {version!r} (use FIX.4.2, FIX.4.4 or FIX.5.0)")


def session_id(version: str, sender: str, target: str) -> fix.SessionID:
    return fix.SessionID(BEGIN_STRING[version], sender, target)


def app_version(sid: fix.SessionID) -> str:
    """The application FIX version a session speaks (FIXT.1.1 sessions speak FIX.5.0 here)."""
    begin = sid.getBeginString().getValue()
    return "FIX.5.0" if begin == "FIXT.1.1" else begin


def session_key(sid: fix.SessionID) -> str:
    """Stable text name of a session, e.g. ``FIX.4.4:FIXGW->CLIENT44``."""
    return sid.toString()


BASE_DEFAULTS = {
    "StartTime": "00:00:00",
    "EndTime": "00:00:00",
    "HeartBtInt": "30",
    "ReconnectInterval": "5",
    "PersistMessages": "Y",
    "SocketNodelay": "Y",
    "TimestampPrecision": "3",
    "LogoutTimeout": "2",
    "ValidateUserDefinedFields": "N",  # venues and clients add custom tags; the codec reads what it needs
}


def build_settings(connection_type: str, store_dir: Path, sessions: list[tuple[fix.SessionID, str, dict[str, str]]],
                   defaults: dict[str, str] | None = None) -> fix.SessionSettings:
    """Settings for one acceptor or initiator.

    ``sessions`` holds (SessionID, application version, per-session settings) tuples.
    """
    store_dir.mkdir(parents=True, exist_ok=True)
    settings = fix.SessionSettings()
    base = fix.Dictionary()
    for key, value in {**BASE_DEFAULTS, **(defaults or {}), "ConnectionType": connection_type,
                       "FileStorePath": str(store_dir)}.items():
        base.setString(key, str(value))
    settings.set(base)
    for sid, version, extra in sessions:
        d = fix.Dictionary()
        for key, value in {**dictionary_settings(version), **extra}.items():
            d.setString(key, str(value))
        settings.set(sid, d)
    return settings


def lookup_session(sid: fix.SessionID) -> fix.Session | None:
    """quickfix's Session for ``sid`` in this process (None when no engine holds it)."""
    return fix.Session.lookupSession(sid)


def session_registered(sid: fix.SessionID) -> bool:
    """Whether quickfix still has the session bound to a connection (``Session::isSessionRegistered``): a new
    connection for it is held, and after 5 s dropped, until the old one is let go."""
    return bool(fix.Session.isSessionRegistered(sid))


def in_session_window(session: fix.Session) -> bool:
    """Whether quickfix considers now inside the session's StartTime/EndTime (and days) window."""
    return bool(session.isSessionTime(fix.UtcTimeStamp.now()))


def graceful_stop(engine, sids: list[fix.SessionID], timeout: float = 3.0, reason: str = "gateway shutting down") -> None:
    """Log every session out, wait (briefly) for the peers' Logout, then stop the engine."""
    graceful_stop_all([(engine, sids)], timeout, reason)


def graceful_stop_all(engines: list[tuple[object, list[fix.SessionID]]], timeout: float = 3.0,
                      reason: str = "gateway shutting down") -> None:
    """``graceful_stop`` for several engines at once: every session logs out first, so the waits overlap."""
    sids = [sid for _, engine_sids in engines for sid in engine_sids]
    for sid in sids:
        session = fix.Session.lookupSession(sid)
        if session is not None and session.isLoggedOn():
            session.logout(reason)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any((s := fix.Session.lookupSession(sid)) is not None and s.isLoggedOn() for sid in sids):
            break
        time.sleep(0.02)
    for engine, _ in engines:
        engine.stop(True)


def start_engine(kind: str, application, settings: fix.SessionSettings, log_factory, start: bool = True):
    """Create and start a ``ThreadedSocketAcceptor`` ("acceptor") or ``SocketInitiator`` ("initiator").

    If ``start()`` fails (e.g. the port is taken), the engine, whose constructor has
    already registered its sessions in quickfix's process-wide registry, is stopped
    and dropped here, before anything else can register the same SessionIDs.
    ``start=False`` only creates it (its sessions exist, unconnected): ``start_now`` later.
    """
    engine_class = fix.ThreadedSocketAcceptor if kind == "acceptor" else fix.SocketInitiator
    engine = engine_class(application, fix.FileStoreFactory(settings), settings, log_factory)
    engine.fixgw_role = getattr(application, "role", kind)  # (names its threads: start_now)
    if start:
        start_now(engine)
    return engine


def start_now(engine) -> None:
    """Start an engine made with ``start=False``; if that fails it is stopped before the error is raised.
    Its native threads are named ``fixgw-qf-<role>`` at the OS level (sessions/threadnames.py): client, venue,
    dropcopy."""
    try:
        with named(f"fixgw-qf-{getattr(engine, 'fixgw_role', 'fix')}"):
            engine.start()
    except Exception:
        engine.stop(True)
        raise
