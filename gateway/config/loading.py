"""Reading gateway.cfg: TOML (floats straight to Decimal) validated into ``GatewayConfig``, errors named by
key, paths resolved against the file's folder, secrets taken from the environment and the secrets file, and, for
one instance of a cluster, its section's overrides applied."""
from __future__ import annotations

import os
import tomllib
from decimal import Decimal
from pathlib import Path

from pydantic import ValidationError

from gateway.config.cluster import with_instance
from gateway.config.root import GatewayConfig
from gateway.config.storage import DATABASE_PASSWORD_ENV, DATABASE_URL_ENV, make_url_password, state_log_problem

SECRETS_FILE_ENV = "FIXGW_SECRETS_FILE"


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid; the message says where."""


def _under(base: Path, p: Path | None) -> Path | None:
    return None if p is None else (p if p.is_absolute() else (base / p).resolve())


def _resolve_tls(base: Path, tls):
    if tls is None:
        return None
    keys = [k for k in ("cert", "key", "client_ca", "ca") if k in type(tls).model_fields]
    return tls.model_copy(update={k: _under(base, getattr(tls, k)) for k in keys})


def _resolve(base: Path, cfg: GatewayConfig, env: dict[str, str]) -> GatewayConfig:
    data_dir = cfg.data_dir if cfg.data_dir.is_absolute() else (base / cfg.data_dir)
    url = env.get(DATABASE_URL_ENV) or cfg.journal.database_url
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://" and ":memory:" not in url:
        url = prefix + str((base / url[len(prefix):]).resolve())
    password = env.get(DATABASE_PASSWORD_ENV)
    if password and not url.startswith("sqlite") and make_url_password(url) is None:
        from sqlalchemy.engine import make_url

        url = make_url(url).set(password=password).render_as_string(hide_password=False)
    journal = cfg.journal.model_copy(update={"database_url": url})
    if journal.archive_dir is not None and not journal.archive_dir.is_absolute():
        journal = journal.model_copy(update={"archive_dir": (base / journal.archive_dir).resolve()})
    risk = cfg.risk
    if risk.rules_file is not None and not risk.rules_file.is_absolute():
        risk = risk.model_copy(update={"rules_file": (base / risk.rules_file).resolve()})
    clients = {n: c.model_copy(update={"tls": _resolve_tls(base, c.tls)}) for n, c in cfg.clients.items()}
    venues = {n: v.model_copy(update={"tls": _resolve_tls(base, v.tls)}) for n, v in cfg.venues.items()}
    return cfg.model_copy(update={"data_dir": data_dir.resolve(), "journal": journal, "risk": risk,
                                  "secrets_file": _under(base, cfg.secrets_file), "clients": clients,
                                  "venues": venues})


def _validate(raw: dict, source: str) -> GatewayConfig:
    try:
        return GatewayConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{source}: invalid configuration:"]
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            lines.append(f"  {where}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from None


def _select_instance(raw: dict, cfg: GatewayConfig, instance: str | None, source: str) -> GatewayConfig:
    """The configuration as ``instance`` of the file's cluster runs it (``cfg`` itself when None)."""
    for key, how in (("instance_name", "`fixgw run --instance NAME` gives it"),
                      ("shard", "each [instance.NAME] names its shard"), ("shards", "the [shard.NAME] sections say")):
        if isinstance(raw.get("cluster"), dict) and key in raw["cluster"]:
            raise ConfigError(f"{source}: cluster.{key} is not a key of the file: {how}")
    if instance is None:
        return cfg
    try:
        merged = with_instance(raw, cfg.instance, cfg.cluster, instance, cfg.shard)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return _validate(merged, f"{source} (instance {instance})")


def _check_cluster_database(cfg: GatewayConfig, source: str) -> None:
    """A cluster's instances share the journal's database, and its lease is PostgreSQL's: refuse anything else."""
    if cfg.cluster is None:
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        backend = make_url(cfg.journal.database_url).get_backend_name()
    except (ArgumentError, ValueError):
        backend = "unparsable"
    if backend != "postgresql":
        raise ConfigError(
            f"{source}: [cluster] {cfg.cluster.name} needs the journal on PostgreSQL (journal.database_url, or "
            f"{DATABASE_URL_ENV}, a postgresql+psycopg:// URL): the instances share nothing but that database, "
            f"where the lease and every session's messages are; {backend} is for a single gateway")
    if cfg.recovery.state_log != "database" and "state_log" in cfg.recovery.model_fields_set:
        raise ConfigError(
            f'{source}: [cluster] {cfg.cluster.name} needs the order state where a successor can read it: [recovery] '
            f'state_log = "database" (the default in a cluster; a file state log stays on the machine that wrote it)')


def parse_config(text: str, base: Path, env: dict[str, str] | None = None, source: str = "<config>",
                 instance: str | None = None) -> GatewayConfig:
    """``instance``: run as that instance of the file's cluster (its ``[instance.NAME]`` overrides applied)."""
    try:
        raw = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    cfg = _select_instance(raw, _validate(raw, source), instance, source)
    if env is None:
        from gateway.security import secretstore
        # secrets: the environment first, then the secrets file (its permissions checked)
        path = os.environ.get(SECRETS_FILE_ENV) or _under(base, cfg.secrets_file)
        try:
            secretstore.use_file(Path(path) if path else None)
        except secretstore.SecretsError as exc:
            raise ConfigError(str(exc)) from None
        env = secretstore.merged_env()
    cfg = _resolve(base, cfg, env)
    _check_cluster_database(cfg, source)
    if cfg.cluster is not None and cfg.recovery.state_log != "database":  # a cluster keeps its order state there
        cfg = cfg.model_copy(update={"recovery": cfg.recovery.model_copy(update={"state_log": "database"})})
    problem = state_log_problem(cfg.recovery, cfg.journal.database_url)  # (the URL the environment may have set)
    if problem:
        raise ConfigError(f"{source}: {problem}")
    return cfg


def load_config(path: str | Path, env: dict[str, str] | None = None, instance: str | None = None) -> GatewayConfig:
    """The file at ``path``; ``instance``: as that instance of its cluster runs it (see ``parse_config``)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror}") from None
    return parse_config(text, p.resolve().parent, env, source=str(p), instance=instance)
