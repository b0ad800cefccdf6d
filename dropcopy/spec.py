"""What an ExecutionReport (35=8) may carry in each FIX version, read from the shipped data dictionaries.

Pure Python (xml.etree over ``fixspecs/``), loaded once per version and cached.
For each version: the body fields of the ExecutionReport definition, flattened
through components but *not* into repeating groups (copies carry no groups: see
``dropcopy.translate``), which of them are required, each field's type and its
enumerated values. The translation uses this to keep exactly the fields the
receiver's version defines, with values its dictionary accepts.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from xml.etree import ElementTree

FIX42 = "FIX.4.2"
FIX44 = "FIX.4.4"
FIX50 = "FIX.5.0"

_FILES = {FIX42: "FIX42.xml", FIX44: "FIX44.xml", FIX50: "FIX50.xml"}
# BeginString (and, over FIXT.1.1, ApplVerID 1128) -> application version
BEGIN_STRINGS = {"FIX.4.2": FIX42, "FIX.4.4": FIX44, "FIXT.1.1": FIX50}
APPL_VER_IDS = {"7": FIX50, "6": FIX44, "4": FIX42}

# Field types whose values may hold SOH or need their length field: never copied.
_BINARY_TYPES = frozenset({"DATA", "LENGTH", "XMLDATA"})
# Types whose value is a space-separated list of enumerated tokens.
_MULTI_TYPES = frozenset({"MULTIPLEVALUESTRING", "MULTIPLESTRINGVALUE", "MULTIPLECHARVALUE"})


@dataclass(frozen=True)
class ReportSpec:
    version: str
    fields: frozenset[int]  # body fields an ExecutionReport may carry (no groups, no binary data)
    required: frozenset[int]
    enums: dict[int, frozenset[str]]  # tag -> allowed values, for enumerated fields
    multi: frozenset[int]  # enumerated fields whose value is a space-separated list

    def value_ok(self, tag: int, value: str) -> bool:
        allowed = self.enums.get(tag)
        if allowed is None:
            return True
        if tag in self.multi:
            return all(v in allowed for v in value.split(" ") if v)
        return value in allowed


@lru_cache(maxsize=None)
def report_spec(version: str) -> ReportSpec:
    """The ExecutionReport definition of ``version`` (FIX.4.2, FIX.4.4 or FIX.5.0)."""
    try:
        filename = _FILES[version]
    except KeyError:
        raise ValueError(f"unsupported FIX version {version!r} (use FIX.4.2, FIX.4.4 or FIX.5.0)") from None
    with resources.files("fixspecs").joinpath(filename).open("rb") as f:
        root = ElementTree.parse(f).getroot()
    numbers: dict[str, int] = {}
    types: dict[int, str] = {}
    enums: dict[int, frozenset[str]] = {}
    for fd in root.iterfind("./fields/field"):
        tag = int(fd.get("number", "0"))
        numbers[fd.get("name", "")] = tag
        types[tag] = fd.get("type", "").upper()
        values = frozenset(v.get("enum", "") for v in fd.iterfind("value"))
        if values:
            enums[tag] = values
    components = {c.get("name"): c for c in root.iterfind("./components/component")}
    (report,) = [m for m in root.iterfind("./messages/message") if m.get("msgtype") == "8"]
    fields: set[int] = set()
    required: set[int] = set()

    def walk(node, node_required: bool) -> None:
        for child in node:
            is_required = node_required and child.get("required") == "Y"
            if child.tag == "field":
                tag = numbers[child.get("name")]
                if types.get(tag) in _BINARY_TYPES:
                    continue
                fields.add(tag)
                if is_required:
                    required.add(tag)
            elif child.tag == "component":
                walk(components[child.get("name")], is_required)
            # <group>: left out on purpose (count and members)

    walk(report, True)
    return ReportSpec(
        version=version,
        fields=frozenset(fields),
        required=frozenset(required),
        enums={t: v for t, v in enums.items() if t in fields},
        multi=frozenset(t for t in fields if types.get(t) in _MULTI_TYPES),
    )
