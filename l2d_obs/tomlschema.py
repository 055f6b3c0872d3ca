"""A TOML table schema read off a frozen dataclass: each field's type hint, default and ``setting(...)``
metadata (help, range, choices, pattern, checks) drive parsing, validation and the written reference.

Types: ``str``, ``int``, ``float`` (an integer is taken too), ``bool``, ``X | None`` (optional: absent
means the default), ``tuple[X, ...]`` (a TOML list, items checked one by one), a nested dataclass (a
table) and ``tuple[Dataclass, ...]`` (an array of tables). Fields with ``toml=False`` are not read
from files (filled in by the caller). Every problem is a ``SchemaProblem`` naming the dotted field.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable

_TYPE_NAMES = {int: "integer", float: "integer or number", str: "string", bool: "true/false", list: "list",
               dict: "table"}


class SchemaProblem(Exception):
    """A value that does not fit: ``where`` is the dotted field (``model.loras[0].scale``)."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"field '{where}': {reason}")
        self.where, self.reason = where, reason


def setting(default: Any = dataclasses.MISSING, *, help: str = "", range: tuple[Any, Any] | None = None,
            open_low: bool = False, why: str = "", multiple_of: int | None = None,
            choices: tuple[str, ...] | None = None, pattern: str | None = None, pattern_words: str = "",
            check: Callable[[Any], str | None] | None = None, convert: Callable[[Any], Any] | None = None,
            key: str | None = None, toml: bool = True, compare: bool = True) -> Any:
    """A dataclass field with its schema. ``range=(low, high)`` (either may be None) with ``why`` said in
    the refusal; ``check(value)`` returns a reason or None; ``convert(value)`` normalises a value (raising
    ValueError with the allowed values in words); ``key``: the TOML name when it differs."""
    meta = dict(help=help, range=range, open_low=open_low, why=why, multiple_of=multiple_of, choices=choices,
                pattern=pattern, pattern_words=pattern_words, check=check, convert=convert, key=key, toml=toml)
    return dataclasses.field(default=default, metadata=meta, compare=compare)


@dataclass(frozen=True)
class Key:
    """One TOML key of a table: where it goes, what it takes, what it means."""

    name: str  # the TOML key
    field: str  # the dataclass field
    kind: Any  # the type hint, ``None`` stripped
    optional: bool
    default: Any  # dataclasses.MISSING when the key is required
    meta: dict

    @property
    def table(self) -> type | None:
        """The dataclass of a table or of each table in an array of tables."""
        inner = _item_type(self.kind) if _is_tuple(self.kind) else self.kind
        return inner if dataclasses.is_dataclass(inner) else None

    @property
    def type_words(self) -> str:
        if _is_tuple(self.kind):
            item = _item_type(self.kind)
            return "array of tables" if dataclasses.is_dataclass(item) else f"list of {_TYPE_NAMES[item]}s"
        if dataclasses.is_dataclass(self.kind):
            return "table"
        return _TYPE_NAMES[self.kind]


def _is_tuple(kind: Any) -> bool:
    return typing.get_origin(kind) is tuple


def _item_type(kind: Any) -> Any:
    return typing.get_args(kind)[0]


def keys(cls: type) -> list[Key]:
    """The TOML keys of dataclass ``cls`` in declaration order."""
    hints = typing.get_type_hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        if not f.metadata.get("toml", True):
            continue
        kind, optional = hints[f.name], False
        if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
            args = [a for a in typing.get_args(kind) if a is not type(None)]
            kind, optional = args[0], len(args) < len(typing.get_args(kind))
        default = f.default
        if default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        found.append(Key(f.metadata.get("key") or f.name, f.name, kind, optional, default, dict(f.metadata)))
    return found


def parse(cls: type, table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Check ``table`` against ``cls`` and return constructor arguments for the keys present (nested
    tables built). Raises SchemaProblem for an unknown key, a wrong type or a value out of its rules."""
    schema = {k.name: k for k in keys(cls)}
    for name in table:
        if name not in schema:
            raise SchemaProblem(f"{prefix}{name}", f"unknown key (known keys: {', '.join(sorted(schema))})")
    values: dict[str, Any] = {}
    for key in schema.values():
        where = f"{prefix}{key.name}"
        if key.name not in table:
            if key.default is dataclasses.MISSING:
                raise SchemaProblem(where, "missing")
            continue
        values[key.field] = _value(key, table[key.name], where)
    return values


def build(cls: type, table: dict[str, Any], prefix: str = "", **extra: Any) -> Any:
    """``cls`` from a TOML table: ``parse`` and construct (``extra``: the non-TOML fields)."""
    return cls(**parse(cls, table, prefix), **extra)


def _value(key: Key, value: Any, where: str) -> Any:
    if key.table is not None and not _is_tuple(key.kind):
        _expect(dict, value, where)
        return build(key.table, value, f"{where}.")
    if _is_tuple(key.kind):
        _expect(list, value, where)
        item = _item_type(key.kind)
        if dataclasses.is_dataclass(item):
            out = []
            for i, entry in enumerate(value):
                if not isinstance(entry, dict):
                    raise SchemaProblem(f"{where}[{i}]", "expected a table")
                out.append(build(item, entry, f"{where}[{i}]."))
            return tuple(out)
        return tuple(_scalar(key, item, v, f"{where}[{i}]", whole=False) for i, v in enumerate(value))
    return _scalar(key, key.kind, value, where)


def _expect(kind: type, value: Any, where: str) -> None:
    accepted = (int, float) if kind is float else kind
    # bool is an int in Python; never take it where a number is expected.
    if isinstance(value, bool) and kind is not bool:
        raise SchemaProblem(where, f"expected {_TYPE_NAMES[kind]}, got true/false")
    if not isinstance(value, accepted):
        raise SchemaProblem(where, f"expected {_TYPE_NAMES[kind]}, got {type(value).__name__} {value!r}")


def _scalar(key: Key, kind: type, value: Any, where: str, whole: bool = True) -> Any:
    _expect(kind, value, where)
    if kind is float:
        value = float(value)
    meta = key.meta
    if meta.get("choices") and value not in meta["choices"]:
        raise SchemaProblem(where, f"must be one of {', '.join(meta['choices'])}, got {value!r}")
    if meta.get("pattern") and not re.fullmatch(meta["pattern"], value):
        raise SchemaProblem(where, f"must be {meta['pattern_words'] or meta['pattern']}, got {value!r}")
    if meta.get("range") and whole:
        _check_range(meta, value, where)
    if meta.get("check"):
        reason = meta["check"](value)
        if reason:
            raise SchemaProblem(where, reason)
    if meta.get("convert"):
        try:
            value = meta["convert"](value)
        except ValueError as exc:
            raise SchemaProblem(where, f"must be {exc}, got {value!r}") from None
    return value


def describe_range(meta: dict) -> str:
    """``in 1..50``, ``>= 1``, ``in (0, 1]``, ``a multiple of 8 in 8..2048``: the rule in words."""
    low, high = meta["range"]
    if high is None:
        text = f"> {low}" if meta["open_low"] else f">= {low}"
    elif low is None:
        text = f"<= {high}"
    elif meta["open_low"]:
        text = f"in ({low:g}, {high:g}]"
    else:
        text = f"in {low}..{high}"
    if meta.get("multiple_of"):
        text = f"a multiple of {meta['multiple_of']} {text}"
    return text


def _check_range(meta: dict, value: Any, where: str) -> None:
    low, high = meta["range"]
    below = low is not None and (value <= low if meta["open_low"] else value < low)
    above = high is not None and value > high
    off_grid = bool(meta.get("multiple_of")) and value % meta["multiple_of"] != 0
    if below or above or off_grid:
        why = f" ({meta['why']})" if meta.get("why") else ""
        raise SchemaProblem(where, f"must be {describe_range(meta)}{why}, got {value}")


def reference(cls: type, prefix: str = "") -> list[str]:
    """Every key of ``cls`` (tables after plain keys, as TOML writes them): name, type, default, rule, help."""
    plain, tables = [], []
    for key in keys(cls):
        if key.table is not None:
            header = f"[[{prefix}{key.name}]]" if _is_tuple(key.kind) else f"[{prefix}{key.name}]"
            tables += ["", header + (f"  {key.meta['help']}" if key.meta.get("help") else "")]
            tables += reference(key.table, f"{prefix}{key.name}.")
            continue
        if key.default is dataclasses.MISSING:
            default = "required"
        elif key.default is None:
            default = "optional"
        else:
            default = f"default {to_toml(key.default)}"
        rules = []
        if key.meta.get("choices"):
            rules.append("one of " + ", ".join(key.meta["choices"]))
        if key.meta.get("pattern_words"):
            rules.append(key.meta["pattern_words"])
        if key.meta.get("range"):
            rules.append(describe_range(key.meta))
        line = f"{key.name} ({key.type_words}, {default}{'; ' + '; '.join(rules) if rules else ''})"
        plain.append(f"{line}: {key.meta['help']}" if key.meta.get("help") else line)
    return plain + tables


def to_toml(value: Any) -> str:
    """A scalar or list as TOML writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(to_toml(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def dump(obj: Any, prefix: str = "") -> list[str]:
    """``obj`` (a schema dataclass) as TOML lines, every key written (None values left out)."""
    plain, tables = [], []
    for key in keys(type(obj)):
        value = getattr(obj, key.field)
        if key.table is not None and _is_tuple(key.kind):
            for entry in value:
                tables += ["", f"[[{prefix}{key.name}]]", *dump(entry, f"{prefix}{key.name}.")]
        elif key.table is not None:
            tables += ["", f"[{prefix}{key.name}]", *dump(value, f"{prefix}{key.name}.")]
        elif value is not None:
            plain.append(f"{key.name} = {to_toml(value)}")
    return plain + tables
