"""Structured log lines: logfmt or JSON, one line per event, IDs as fields."""
from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys

import pytest

from gateway.observability.logs import LogfmtFormatter, fields, make_formatter
from orders.actions import Note

LOGFMT_PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def parse_logfmt(line: str) -> dict[str, str]:
    out = {}
    for key, value in LOGFMT_PAIR.findall(line):
        if value.startswith('"'):
            value = re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r", "t": "\t"}.get(m.group(1), m.group(1)),
                           value[1:-1])
        out[key] = value
    return out


def emit(fmt: str, level: int, msg: str, *args, exc_info=None, **extra) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(make_formatter(fmt))
    logger = logging.getLogger(f"fixgw.test.{fmt}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.log(level, msg, *args, exc_info=exc_info, extra=extra)
    return stream.getvalue()


def test_text_lines_are_logfmt_with_the_ids_as_fields():
    out = emit("text", logging.WARNING, "order %s rejected: %s", "GW-1", 'price "band" = 10%',
               **fields(session="CLIENT44", cl_ord_id="A 1", order_id="GW-1", venue=None))
    assert out.count("\n") == 1
    parsed = parse_logfmt(out.strip())
    assert parsed["level"] == "warning" and parsed["logger"] == "fixgw.test.text"
    assert parsed["msg"] == 'order GW-1 rejected: price "band" = 10%'
    assert (parsed["session"], parsed["cl_ord_id"], parsed["order_id"]) == ("CLIENT44", "A 1", "GW-1")
    assert "venue" not in parsed  # unset IDs are left out
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", parsed["ts"])


def test_json_lines_parse_and_carry_the_ids():
    out = emit("json", logging.INFO, "session logged on: %s", "CLIENT42", session="CLIENT42", role="client")
    assert out.count("\n") == 1
    record = json.loads(out)
    assert record["msg"] == "session logged on: CLIENT42" and record["level"] == "info"
    assert record["session"] == "CLIENT42" and record["role"] == "client" and "ts" in record


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_traceback_stays_on_the_events_one_line(fmt):
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        out = emit(fmt, logging.ERROR, "core failed", exc_info=True, session="CLIENT50")
    assert out.count("\n") == 1
    record = json.loads(out) if fmt == "json" else parse_logfmt(out.strip())
    assert "ValueError: boom" in record["exc"] and record["session"] == "CLIENT50"


def test_a_core_note_is_a_string_with_its_ids_as_fields():
    note = Note("order GW-7 not canceled", session="CLIENT44", order_id="GW-7", venue=None)
    assert note == "order GW-7 not canceled" and "GW-7" in note
    assert note.fields == {"session": "CLIENT44", "order_id": "GW-7"}


def test_values_that_need_no_quoting_are_bare():
    assert LogfmtFormatter.quote("CLIENT44") == "CLIENT44"
    assert LogfmtFormatter.quote("") == '""'
    assert LogfmtFormatter.quote("a=b") == '"a=b"'


def test_log_format_json_is_refused_unless_spelt_right(tmp_path):
    from gateway.config import ConfigError, parse_config

    assert parse_config('log_format = "json"\n', tmp_path, env={}).log_format == "json"
    with pytest.raises(ConfigError, match="log_format"):
        parse_config('log_format = "yaml"\n', tmp_path, env={})


def test_a_fixgw_process_writes_one_json_object_per_line_to_stderr(tmp_path):
    import shutil
    from pathlib import Path

    from tests.fix_fixtures import free_port

    cfg = tmp_path / "gw.cfg"
    cfg.write_text(f'''data_dir = "{tmp_path}"
log_format = "json"
[venues.V1]
fix_version = "FIX.4.4"
port = {free_port()}
symbols = ["AAPL"]
[venues.V1.simulator]
prices = {{ AAPL = 190.00 }}
''')
    fixgw = shutil.which("fixgw", path=str(Path(sys.executable).parent)) or "fixgw"
    out = subprocess.run([fixgw, "venue-sim", "-c", str(cfg), "--venue", "V1", "--duration", "0.5"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stderr.splitlines()]
    assert lines and all({"ts", "level", "logger", "msg"} <= line.keys() for line in lines)
    assert any("V1" in line["msg"] for line in lines)
