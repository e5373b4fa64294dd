"""Enough of GitHub Actions' ``${{ }}`` expression language to decide an
``if:`` offline: literals, ``!``/``&&``/``||``, ``==``/``!=``, context lookups
(``matrix.*``, ``inputs.*``, ``needs.*``) and the functions ``success``,
``always``, ``failure``, ``cancelled``, ``contains``, ``startsWith``,
``endsWith`` and ``fromJSON``. What cannot be known here (``github.*``,
``secrets.*``, ...) is :data:`UNKNOWN`, and :func:`evaluate` then answers
None instead of guessing."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any


class _Unknown:
    """A value the check cannot know here (``github.*``, ``secrets.*``, ...)."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()
EXPR_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<op>&&|\|\||==|!=|[!(),])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_.*-]*))"
)
LITERALS: dict[str, Any] = {"true": True, "false": False, "null": None}


def _tokens(text: str) -> list[tuple[str, str]]:
    text = text.strip()
    found: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = EXPR_TOKEN.match(text, pos)
        if not m or not m.lastgroup:
            raise ValueError(f"cannot read {text[pos:]!r}")
        found.append((m.lastgroup, m[m.lastgroup]))
        pos = m.end()
    return found


def _truthy(value: Any) -> Any:
    if value is UNKNOWN:
        return UNKNOWN
    return not (value is None or value is False or value in (0, ""))


def _not(value: Any) -> Any:
    t = _truthy(value)
    return UNKNOWN if t is UNKNOWN else not t


def _and(a: Any, b: Any) -> Any:
    ta, tb = _truthy(a), _truthy(b)
    if ta is False or tb is False:
        return False
    return UNKNOWN if UNKNOWN in (ta, tb) else True


def _or(a: Any, b: Any) -> Any:
    ta, tb = _truthy(a), _truthy(b)
    if ta is True or tb is True:
        return True
    return UNKNOWN if UNKNOWN in (ta, tb) else False


def _eq(a: Any, b: Any) -> Any:
    if a is UNKNOWN or b is UNKNOWN:
        return UNKNOWN
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold()
    return bool(a == b)


def _call(name: str, args: list[Any]) -> Any:
    fn = name.lower()
    if fn in ("success", "always"):
        return True  # the step is reached: every earlier step succeeded
    if fn in ("failure", "cancelled"):
        return False
    if any(a is UNKNOWN for a in args) or len(args) != {"fromjson": 1}.get(fn, 2):
        return UNKNOWN
    if fn == "fromjson":
        return json.loads(str(args[0]))
    if fn == "contains":
        if isinstance(args[0], list):
            return any(_eq(item, args[1]) is True for item in args[0])
        return str(args[1]).casefold() in str(args[0]).casefold()
    if fn in ("startswith", "endswith"):
        a, b = str(args[0]).casefold(), str(args[1]).casefold()
        return a.startswith(b) if fn == "startswith" else a.endswith(b)
    return UNKNOWN


def _lookup(name: str, context: Mapping[str, Any]) -> Any:
    """``a.b.c`` from ``context``, whose keys may be dotted prefixes (``matrix.nox``)."""
    if name in LITERALS:
        return LITERALS[name]
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        key = ".".join(parts[:i])
        if key not in context:
            continue
        value = context[key]
        for part in parts[i:]:
            if value is UNKNOWN:
                return UNKNOWN
            value = value.get(part) if isinstance(value, dict) else None
        return value
    return UNKNOWN


class _Parser:
    """Recursive descent over ``||``, ``&&``, ``!``, ``==``/``!=``, calls and names."""

    def __init__(self, text: str, context: Mapping[str, Any]) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.context = context

    def peek(self) -> str:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else ""

    def take(self) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise ValueError("unexpected end of expression")
        self.pos += 1
        return self.tokens[self.pos - 1]

    def expect(self, op: str) -> None:
        if self.take() != ("op", op):
            raise ValueError(f"expected {op!r}")

    def parse(self) -> Any:
        value = self.or_()
        if self.pos != len(self.tokens):
            raise ValueError(f"unexpected {self.peek()!r}")
        return value

    def or_(self) -> Any:
        value = self.and_()
        while self.peek() == "||":
            self.take()
            value = _or(value, self.and_())
        return value

    def and_(self) -> Any:
        value = self.unary()
        while self.peek() == "&&":
            self.take()
            value = _and(value, self.unary())
        return value

    def unary(self) -> Any:
        if self.peek() == "!":
            self.take()
            return _not(self.unary())
        value = self.primary()
        if self.peek() in ("==", "!="):
            op = self.take()[1]
            same = _eq(value, self.primary())
            return same if op == "==" else _not(same)
        return value

    def primary(self) -> Any:
        kind, text = self.take()
        if (kind, text) == ("op", "("):
            value = self.or_()
            self.expect(")")
            return value
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return float(text)
        if kind != "name":
            raise ValueError(f"unexpected {text!r}")
        if self.peek() != "(":
            return _lookup(text, self.context)
        self.take()
        args: list[Any] = []
        while self.peek() != ")":
            if args:
                self.expect(",")
            args.append(self.or_())
        self.take()
        return _call(text, args)


def evaluate(condition: Any, context: Mapping[str, Any]) -> bool | None:
    """Whether an ``if:`` holds under ``context`` (None: it depends on what is unknown here)."""
    if condition is None:
        return True
    if isinstance(condition, bool):
        return condition
    text = str(condition).strip()
    wrapped = re.fullmatch(r"\$\{\{(.*)\}\}", text, re.S)
    try:
        value = _Parser(wrapped[1] if wrapped else text, context).parse()
    except (ValueError, TypeError, json.JSONDecodeError):
        return None
    truth = _truthy(value)
    return None if truth is UNKNOWN else bool(truth)
