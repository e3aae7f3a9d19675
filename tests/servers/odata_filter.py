"""The subset of OData ``$filter`` that senprep's CDSE searches use, compiled to predicates over the CDSE test
server's catalogue entries: ``and`` / ``or``, comparisons, ``OData.CSC.Intersects(area=geography'...')``
and attribute ``any(...)`` lambdas (CDSE's OData catalogue documentation)."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from shapely import wkt as shapely_wkt

_TOKEN = re.compile(
    r"\s*(?:(?P<geo>geography'[^']*')|(?P<str>'(?:[^']|'')*')|(?P<time>\d{4}-\d{2}-\d{2}T[\d:.]+Z?)"
    r"|(?P<num>-?\d+(?:\.\d+)?)|(?P<punct>[(),:=])|(?P<name>[A-Za-z_][\w.]*(?:/[A-Za-z_][\w.]*)*))"
)
_OPS: dict[str, Callable[[Any, Any], bool]] = {k: getattr(operator, k) for k in ("eq", "ne", "gt", "ge", "lt", "le")}
Env = dict[str, Any]


def parse_datetime(text: str) -> datetime:
    """An OData date-time literal as an aware UTC datetime."""
    return datetime.fromisoformat(text.rstrip("Z")).replace(tzinfo=timezone.utc)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text.rstrip()):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"cannot parse $filter at {text[pos : pos + 30]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    """Recursive descent: or > and > (group | function | comparison); compiles to closures."""

    def __init__(self, text: str) -> None:
        self.toks, self.i = _tokens(text), 0

    def peek(self) -> tuple[str, str]:
        return self.toks[self.i] if self.i < len(self.toks) else ("end", "")

    def take(self, *values: str) -> tuple[str, str]:
        """The next token (checked against each of ``values`` in turn, consuming one per value)."""
        tok = self.peek()
        for value in values or (None,):
            tok = self.peek()
            if tok[0] == "end" or (value is not None and tok[1] != value):
                raise ValueError(f"expected {value or 'a token'}, found {tok[1]!r}")
            self.i += 1
        return tok

    def expr(self, word: str = "or") -> Callable[[Env], bool]:
        sub = (lambda: self.expr("and")) if word == "or" else self.unary
        parts = [sub()]
        while self.peek() == ("name", word):
            self.take()
            parts.append(sub())
        combine = any if word == "or" else all
        return parts[0] if len(parts) == 1 else (lambda env: combine(p(env) for p in parts))

    def unary(self) -> Callable[[Env], bool]:
        if self.peek()[1] == "(":
            self.take("(")
            inner = self.expr()
            self.take(")")
            return inner
        name = self.take()[1]
        if name == "OData.CSC.Intersects":
            self.take("(", "area", "=")
            geo = self.take()[1]
            self.take(")")
            area = shapely_wkt.loads(geo[len("geography'") : -1].split(";", 1)[1])
            return lambda env: env["e"].footprint is not None and env["e"].footprint.intersects(area)
        if name.endswith("/any"):
            kind_name = name.split("/")[1].rsplit(".", 1)[-1]  # StringAttribute, DoubleAttribute...
            self.take("(")
            var = self.take()[1]
            self.take(":")
            body = self.expr()
            self.take(")")
            return lambda env: any(
                body({**env, var: a}) for a in env["e"].attributes if a["@odata.type"].endswith(kind_name)
            )
        op = _OPS.get(self.take()[1])
        if op is None:
            raise ValueError(f"unknown operator in $filter after {name!r}")
        literal = self.literal()
        return lambda env: (v := self.value(name, env)) is not None and op(v, literal)

    def literal(self) -> Any:
        kind, value = self.take()
        if kind == "str":
            return value[1:-1].replace("''", "'")
        if kind == "time":
            return parse_datetime(value)
        if kind == "num":
            return float(value)
        if value in ("true", "false"):
            return value == "true"
        raise ValueError(f"expected a literal, found {value!r}")

    @staticmethod
    def value(path: str, env: Env) -> Any:
        head, _, rest = path.partition("/")
        if head in env:  # a lambda variable: att/Name, att/OData.CSC.StringAttribute/Value
            return env[head]["Name" if rest == "Name" else "Value"]
        entry = env["e"]
        fields = {"Collection/Name": entry.collection, "Name": entry.name, "Online": entry.online,
                  "ContentDate/Start": entry.start, "ContentDate/End": entry.end}  # fmt: skip
        if path not in fields:
            raise ValueError(f"unknown property {path!r}")
        return fields[path]


def compile_filter(text: str) -> Callable[[Any], bool]:
    """A predicate over entries for an OData ``$filter`` (ValueError when it is outside the subset)."""
    parser = _Parser(text)
    predicate = parser.expr()
    if parser.peek()[0] != "end":
        raise ValueError(f"unexpected {parser.peek()[1]!r} in $filter")
    return lambda entry: predicate({"e": entry})


__all__ = ["compile_filter", "parse_datetime"]
