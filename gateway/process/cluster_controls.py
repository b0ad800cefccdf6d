"""The gateway's side of a sharded cluster's control plane (gateway/cluster/controls.py): the follower that applies
the cluster's controls through this instance's engine, and issuing one from the admin API."""
from __future__ import annotations

import logging
from pathlib import Path

from gateway.cluster.controls import Control, ControlBoard, ControlFollower
from gateway.config.cluster import shard_lease_name
from orders.commands import KillSwitch, OperatorCancel, ReloadRisk
from risk.rules import RulesError, load_rules

log = logging.getLogger("fixgw.cluster")

#: How long the admin API waits for the other shards to apply a control it issued before it answers.
OTHERS_WAIT_S = 2.0


class ClusterControls:
    """This instance's follower of the cluster's controls, and what the admin API asks of them."""

    def __init__(self, gw, poll_s: float = 0.2):
        cluster = gw.cfg.cluster
        self._gw = gw
        self.cluster, self.instance, self.lease = cluster.name, cluster.instance_name, cluster.lease_name
        self.leases = [shard_lease_name(cluster.name, s) for s in cluster.shards]
        self.board = ControlBoard(gw.cluster.engine, cluster.name)
        self.follower = ControlFollower(self.board, self.lease, self.instance, self.apply, gw.cluster.fence,
                                        poll_s=poll_s)

    @classmethod
    def start_for(cls, gw) -> "ClusterControls | None":
        """For an instance of a sharded cluster, started (what came while its shard had no active is applied
        first); None for any other gateway."""
        if gw.cfg.cluster is None or gw.cfg.cluster.shard is None:
            return None
        return cls(gw).start()

    def start(self) -> "ClusterControls":
        self.follower.start()
        return self

    def stop(self) -> None:
        self.follower.stop()

    # ------------------------------------------------------------------ the admin API's
    def issue(self, kind: str, body: dict, operator: str, timeout: float = 5.0) -> dict:
        """Issue a control for every shard; answer once this shard applied it, with what every shard answered
        (the others waited for up to ``OTHERS_WAIT_S``). Raises TimeoutError if this shard did not apply it."""
        control_id = self.board.issue(kind, body, operator=operator, instance=self.instance)
        self.follower.wake()
        done, pending = self.board.wait_applied(control_id, [self.lease], timeout)
        if pending:
            raise TimeoutError(f"cluster control {control_id} was issued but this shard has not applied it within "
                               f"{timeout:g} s; every shard applies it when it can (fixgw cluster controls)")
        done, pending = self.board.wait_applied(control_id, self.leases, OTHERS_WAIT_S)
        own = done[self.lease]
        return {"ok": own["ok"], **own["result"], "control": control_id, "shards": done, "pending": pending}

    # ------------------------------------------------------------------ the follower's
    def apply(self, control: Control) -> tuple[bool, dict]:
        """Carry one control out through the engine (on the follower's thread): (ok, what it answered)."""
        body = control.body
        who = f"{control.operator} (cluster control {control.id} from {control.issued_by})"
        try:
            if control.kind in ("kill", "unkill"):
                command = KillSwitch(scope=body["scope"], key=body.get("key", ""), engage=control.kind == "kill",
                                     reduce_only=bool(body.get("reduce_only")),
                                     cancel_open=bool(body.get("cancel_open")), operator=who)
            elif control.kind == "cancel":
                command = OperatorCancel(account=body.get("account"), symbol=body.get("symbol"), operator=who)
            elif control.kind == "reload_risk":
                path = self._gw.cfg.risk.rules_file
                if path is None:
                    return False, {"error": "risk checks are off here: no [risk] rules_file is configured"}
                command = ReloadRisk(load_rules(Path(path).read_text(), str(path)), str(path))
            else:
                return False, {"error": f"unknown cluster control {control.kind!r}: a newer fixgw issued it?"}
            outcome = self._gw.engine.request(command, timeout=30)
        except TimeoutError:
            return False, {"error": "the engine did not carry it out within 30 s; see this instance's log"}
        except OSError as exc:
            return False, {"error": f"cannot read the risk rules: {exc.strerror}; the current rules stay in force"}
        except RulesError as exc:
            return False, {"error": f"{exc}; the current rules stay in force"}
        except (KeyError, TypeError, ValueError) as exc:
            return False, {"error": f"malformed cluster control: {exc!r}"}
        if outcome is None:
            return False, {"error": "the gateway failed on this command; see its log"}
        result = dict(outcome.result or {})
        ok = bool(result.pop("ok", True))
        return ok, result
