"""`fixgw client`'s command grammar: the words of one command (a line of a file or the prompt, or the
command line's ACTION) as an intent, checked before anything is sent; and the run's exit statuses.

Pure, as are the other two parts of the client's language: what counts as an answer
(gateway/cli/client_answers.py) and how reports read (gateway/cli/client_reports.py). The session that
speaks it is gateway/cli/client_session.py.

Grammar, one command per line (the same words after ``fixgw client NAME`` on the command line)::

    buy|sell|short QTY SYMBOL [--limit PX] [--stop PX] [--tif day|gtc|ioc|fok] [--account A]
                              [--venue V] [--strategy S] [--id CLORDID] [--no-wait]
    cancel CLORDID [--symbol S --side buy|sell|short] [--qty Q] [--id CLORDID] [--no-wait]
    replace CLORDID [--qty Q] [--limit PX] [--symbol S --side SIDE] [--id CLORDID] [--no-wait]
    status CLORDID [--symbol S --side SIDE]
    mass-cancel [SYMBOL]
    wait [CLORDID]        until the order (default: the last one sent) is filled, canceled, rejected or expired
    sleep SECONDS         pause; reports go on being shown
    help | quit

``#`` starts a comment. Orders sent in the same run are remembered, so ``cancel C1`` (or ``cancel last``)
needs nothing else; an order from an earlier run needs ``--symbol`` and ``--side`` (FIX requires them).
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

# ------------------------------------------------------------------------------------------ exit statuses
EXIT_OK = 0          # every request was answered and accepted
EXIT_ERROR = 1       # could not log on (refused, no connection), configuration problem (click.ClickException)
EXIT_USAGE = 2       # a command line that does not parse (nothing was sent for it)
EXIT_REFUSED = 3     # the gateway answered with a refusal: order Rejected, OrderCancelReject, Reject, BMR
EXIT_TIMEOUT = 4     # no final answer within --timeout
EXIT_DISCONNECTED = 5  # the session ended before the run did (a Logout from the gateway, a dropped connection)

SIDES = {"buy": "1", "sell": "2", "short": "5"}
SIDE_NAMES = {v: k for k, v in SIDES.items()}
TIFS = {"day": "0", "gtc": "1", "ioc": "3", "fok": "4"}

HELP = """commands (one per line; # starts a comment):
  buy|sell|short QTY SYMBOL [--limit PX] [--stop PX] [--tif day|gtc|ioc|fok] [--account A]
                            [--venue V] [--strategy S] [--id CLORDID] [--no-wait]
  cancel CLORDID [--symbol S --side buy|sell|short] [--qty Q] [--id CLORDID] [--no-wait]
  replace CLORDID [--qty Q] [--limit PX] [--symbol S --side SIDE] [--id CLORDID] [--no-wait]
  status CLORDID [--symbol S --side SIDE]
  mass-cancel [SYMBOL]        (FIX 4.4 and 5.0)
  wait [CLORDID]              until the order (default: the last one) is filled, canceled, rejected or expired
  sleep SECONDS               pause (reports go on being shown)
  help, quit
CLORDID "last" is the last order sent in this run; --symbol/--side are only needed for an order
sent before this run."""


class CommandError(ValueError):
    """A command line that does not parse; the message says what is wrong."""


# ------------------------------------------------------------------------------------------ intents
@dataclass(frozen=True)
class NewOrder:
    side: str  # FIX Side: 1 buy, 2 sell, 5 sell short
    qty: Decimal
    symbol: str
    limit: Decimal | None = None
    stop: Decimal | None = None
    tif: str | None = None  # FIX TimeInForce; None: not sent (the gateway's default, Day)
    account: str | None = None
    venue: str | None = None  # ExDestination (100)
    strategy: str | None = None  # routing strategy, custom tag 9100
    cl_ord_id: str | None = None
    wait: bool = True

    @property
    def ord_type(self) -> str:
        if self.stop is not None:
            return "4" if self.limit is not None else "3"
        return "2" if self.limit is not None else "1"


@dataclass(frozen=True)
class Cancel:
    orig_cl_ord_id: str
    symbol: str | None = None
    side: str | None = None
    qty: Decimal | None = None
    cl_ord_id: str | None = None
    wait: bool = True


@dataclass(frozen=True)
class Replace:
    orig_cl_ord_id: str
    qty: Decimal | None = None
    limit: Decimal | None = None
    symbol: str | None = None
    side: str | None = None
    cl_ord_id: str | None = None
    wait: bool = True


@dataclass(frozen=True)
class Status:
    cl_ord_id: str
    symbol: str | None = None
    side: str | None = None


@dataclass(frozen=True)
class MassCancel:
    symbol: str | None = None  # None: all orders of the session (MassCancelRequestType 7), else by symbol (1)


@dataclass(frozen=True)
class Wait:
    cl_ord_id: str | None = None


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class Quit:
    pass


Intent = NewOrder | Cancel | Replace | Status | MassCancel | Wait | Sleep | Help | Quit

# option name -> (takes a value, intents that accept it)
_OPTIONS = {
    "--limit": True, "--stop": True, "--tif": True, "--account": True, "--venue": True, "--strategy": True,
    "--id": True, "--no-wait": False, "--symbol": True, "--side": True, "--qty": True,
}
_ALLOWED = {
    "order": {"--limit", "--stop", "--tif", "--account", "--venue", "--strategy", "--id", "--no-wait"},
    "cancel": {"--symbol", "--side", "--qty", "--id", "--no-wait"},
    "replace": {"--qty", "--limit", "--symbol", "--side", "--id", "--no-wait"},
    "status": {"--symbol", "--side"},
}


def parse_line(line: str) -> Intent | None:
    """One line of a file or the prompt: None for a blank line or a comment."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError as exc:
        raise CommandError(f"cannot split the line into words: {exc}") from None
    return parse_words(words) if words else None


def parse_words(words: list[str] | tuple[str, ...]) -> Intent:
    """A command given as words (the command line's ACTION, or a line split by ``parse_line``)."""
    if not words:
        raise CommandError("no command given")
    verb, rest = words[0].lower(), list(words[1:])
    if verb in SIDES:
        args, opts = _split(verb, rest, _ALLOWED["order"])
        _arity(verb, args, 2, "QTY SYMBOL")
        qty = _decimal(args[0], "QTY", positive=True)
        tif = opts.get("--tif")
        if tif is not None and tif.lower() not in TIFS:
            raise CommandError(f"--tif {tif}: use one of {', '.join(TIFS)}")
        return NewOrder(side=SIDES[verb], qty=qty, symbol=_word(args[1], "SYMBOL"),
                        limit=_opt_decimal(opts, "--limit"), stop=_opt_decimal(opts, "--stop"),
                        tif=TIFS[tif.lower()] if tif is not None else None,
                        account=_opt_word(opts, "--account"), venue=_opt_word(opts, "--venue"),
                        strategy=_opt_word(opts, "--strategy"), cl_ord_id=_opt_word(opts, "--id"),
                        wait="--no-wait" not in opts)
    if verb == "cancel":
        args, opts = _split(verb, rest, _ALLOWED["cancel"])
        _arity(verb, args, 1, "CLORDID")
        symbol, side = _symbol_side(opts)
        return Cancel(orig_cl_ord_id=_word(args[0], "CLORDID"), symbol=symbol, side=side,
                      qty=_opt_decimal(opts, "--qty"), cl_ord_id=_opt_word(opts, "--id"),
                      wait="--no-wait" not in opts)
    if verb == "replace":
        args, opts = _split(verb, rest, _ALLOWED["replace"])
        _arity(verb, args, 1, "CLORDID")
        if "--qty" not in opts and "--limit" not in opts:
            raise CommandError("replace: give --qty and/or --limit (what changes)")
        symbol, side = _symbol_side(opts)
        return Replace(orig_cl_ord_id=_word(args[0], "CLORDID"), qty=_opt_decimal(opts, "--qty"),
                       limit=_opt_decimal(opts, "--limit"), symbol=symbol, side=side,
                       cl_ord_id=_opt_word(opts, "--id"), wait="--no-wait" not in opts)
    if verb == "status":
        args, opts = _split(verb, rest, _ALLOWED["status"])
        _arity(verb, args, 1, "CLORDID")
        symbol, side = _symbol_side(opts)
        return Status(cl_ord_id=_word(args[0], "CLORDID"), symbol=symbol, side=side)
    if verb == "mass-cancel":
        args, _ = _split(verb, rest, set())
        if len(args) > 1:
            raise CommandError("mass-cancel takes at most one SYMBOL (none: every order of the session)")
        return MassCancel(symbol=_word(args[0], "SYMBOL") if args else None)
    if verb == "wait":
        args, _ = _split(verb, rest, set())
        if len(args) > 1:
            raise CommandError("wait takes at most one CLORDID (none: the last order sent)")
        return Wait(cl_ord_id=_word(args[0], "CLORDID") if args else None)
    if verb == "sleep":
        args, _ = _split(verb, rest, set())
        _arity(verb, args, 1, "SECONDS")
        try:
            seconds = float(args[0])
        except ValueError:
            raise CommandError(f"sleep: {args[0]!r} is not a number of seconds") from None
        if not 0 <= seconds <= 86400:
            raise CommandError("sleep: SECONDS must be between 0 and 86400")
        return Sleep(seconds)
    if verb in ("help", "?"):
        return Help()
    if verb in ("quit", "exit"):
        return Quit()
    raise CommandError(f"unknown command {words[0]!r}: use buy, sell, short, cancel, replace, status, "
                       "mass-cancel, wait, sleep, help or quit")


def check_version(intent: Intent | None, version: str) -> Intent | None:
    """Refuse what the session's FIX version cannot say (FIX 4.2 has no OrderMassCancelRequest)."""
    if isinstance(intent, MassCancel) and version == "FIX.4.2":
        raise CommandError("mass-cancel needs FIX 4.4 or 5.0 (this session speaks FIX.4.2): cancel orders one "
                           "by one")
    return intent


def _split(verb: str, words: list[str], allowed: set[str]) -> tuple[list[str], dict[str, str]]:
    args: list[str] = []
    opts: dict[str, str] = {}
    i = 0
    while i < len(words):
        w = words[i]
        if w.startswith("--"):
            name, eq, value = w.partition("=")
            if name not in _OPTIONS or name not in allowed:
                known = ", ".join(sorted(allowed)) or "none"
                raise CommandError(f"{verb}: unknown option {name} (options: {known})")
            if name in opts:
                raise CommandError(f"{verb}: {name} given twice")
            if _OPTIONS[name]:
                if not eq:
                    i += 1
                    if i >= len(words):
                        raise CommandError(f"{verb}: {name} needs a value")
                    value = words[i]
                opts[name] = value
            else:
                if eq:
                    raise CommandError(f"{verb}: {name} takes no value")
                opts[name] = ""
        else:
            args.append(w)
        i += 1
    return args, opts


def _arity(verb: str, args: list[str], n: int, what: str) -> None:
    if len(args) != n:
        raise CommandError(f"{verb} needs {what}, got {' '.join(args) or 'nothing'}")


def _word(value: str, what: str) -> str:
    if not value or not all(33 <= ord(ch) <= 126 for ch in value):
        raise CommandError(f"{what} {value!r} must be printable ASCII without spaces")
    return value


def _opt_word(opts: dict[str, str], name: str) -> str | None:
    return _word(opts[name], name) if name in opts else None


def _decimal(text: str, what: str, positive: bool = False) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise CommandError(f"{what} {text!r} is not a number") from None
    if not value.is_finite() or "e" in text.lower():
        raise CommandError(f"{what} {text!r} is not a plain decimal number")
    if positive and value <= 0:
        raise CommandError(f"{what} must be positive, got {text}")
    return value


def _opt_decimal(opts: dict[str, str], name: str) -> Decimal | None:
    return _decimal(opts[name], name, positive=True) if name in opts else None


def _symbol_side(opts: dict[str, str]) -> tuple[str | None, str | None]:
    side = opts.get("--side")
    if side is not None and side.lower() not in SIDES:
        raise CommandError(f"--side {side}: use buy, sell or short")
    return _opt_word(opts, "--symbol"), SIDES[side.lower()] if side is not None else None
