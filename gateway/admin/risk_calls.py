"""The admin API's risk calls: `fixgw risk show|reload|kill|unkill`, the pre-trade chain's rules and kill
switches, changed through the engine."""
from __future__ import annotations

from pathlib import Path

from gateway.admin.names import Names
from gateway.admin.request import AdminError, cluster_request, engine_request, flag, only, opt_str
from orders.commands import KillSwitch, ReloadRisk
from risk.rules import RulesError, load_rules


class RiskCalls:
    """Shows the risk state, reloads the rules file and engages or releases kill switches for the admin API."""

    KILL_SCOPES = ("global", "session", "account", "symbol")

    def __init__(self, gateway, known: Names):
        self._gw = gateway
        self._known = known

    def show(self) -> dict:
        gw = self._gw
        return gw.engine.call(lambda core: core.risk_summary()) | {"rules_file": str(gw.cfg.risk.rules_file)}

    def reload(self, payload: dict, operator: str = "operator") -> dict:
        only(payload)
        path = self._gw.cfg.risk.rules_file
        if path is None:
            raise AdminError(400, "risk checks are off: no [risk] rules_file is configured")
        try:
            rules = load_rules(Path(path).read_text(), str(path))
        except OSError as exc:
            raise AdminError(400, f"cannot read {path}: {exc.strerror}; the current rules stay in force") from None
        except RulesError as exc:
            raise AdminError(400, f"{exc}\nthe current rules stay in force") from None
        if self._gw.controls is not None:  # a sharded cluster: every shard reloads its own rules file
            return cluster_request(self._gw.controls, "reload_risk", {}, operator)
        return engine_request(self._gw, ReloadRisk(rules, str(path)))

    def kill_switch(self, engage: bool, payload: dict, operator: str) -> dict:
        """`fixgw risk kill|unkill SCOPE [KEY]`: the scope is required, the key must name something that exists.

        Releasing also takes the key of a switch engaged now, whatever it names.
        """
        only(payload, "scope", "key", *(("reduce_only", "cancel_open") if engage else ()))
        scope, key = opt_str(payload, "scope"), opt_str(payload, "key") or ""
        if scope == "session":
            key = self._known.session_name(key)
        if scope not in self.KILL_SCOPES:
            given = "none given" if scope is None else f"got {scope!r}"
            raise AdminError(400, f"scope must be one of {', '.join(self.KILL_SCOPES)} ({given})")
        if scope == "global" and key:
            raise AdminError(400, f"a global kill switch takes no key (got {key!r}); "
                                  "for one session, account or symbol give that scope")
        if scope != "global" and not key:
            raise AdminError(400, f"a {scope} kill switch needs the {scope} it applies to")
        controls = self._gw.controls
        if controls is not None and scope != "session":  # a sharded cluster: every shard engages it
            body = {"scope": scope, "key": key, "reduce_only": flag(payload, "reduce_only"),
                    "cancel_open": flag(payload, "cancel_open")}
            notes = self._unknown_here(scope, key, engage)
            return cluster_request(controls, "kill" if engage else "unkill", body, operator) | notes
        if scope != "global":
            self._known.check(scope, key, also=() if engage else self._known.engaged(scope))
        return engine_request(self._gw, KillSwitch(scope=scope, key=key, engage=engage,
                                                   reduce_only=flag(payload, "reduce_only"),
                                                   cancel_open=flag(payload, "cancel_open"), operator=operator))

    def _unknown_here(self, scope: str, key: str, engage: bool) -> dict:
        """A cluster-wide switch may name an account or symbol this shard has not seen (another shard's): not
        refused, but said."""
        if scope == "global":
            return {}
        try:
            self._known.check(scope, key, also=() if engage else self._known.engaged(scope))
        except AdminError as exc:
            done = "engaged" if engage else "released"
            return {"note": f"{exc} on this shard; {done} for every shard all the same"}
        return {}
