"""Parser of the string form of filters (see :mod:`vecstore._filter`).

A recursive-descent parser over :func:`tokenize`'s tokens whose recursion is
capped at :data:`MAX_DEPTH` levels of parentheses/NOT, so no input can raise
``RecursionError``.  Every error is a :class:`FilterError` naming the 0-based
character offset, with an excerpt and a caret.
"""

from __future__ import annotations

import functools
from typing import Any

from .._errors import FilterError
from .anyof import AnyElem
from .ast import And, Compare, Contains, Exists, InList, IsNull, Node, Not, Or, StartsWith
from .ids import HasId
from .lex import MAX_LENGTH, Token, syntax_error, tokenize
from .values import MAX_DEPTH, DepthError, Scalar

_OPS_HELP = "=, !=, <, <=, >, >=, IN, NOT IN, CONTAINS, STARTSWITH, EXISTS, IS NULL, IS NOT NULL"


class _Parser:
    """Recursive-descent parser over a token list."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = tokenize(text)
        self.i = 0

    def peek(self) -> Token:
        return self.toks[self.i]

    def next(self) -> Token:
        tok = self.toks[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def is_kw(self, word: str) -> bool:
        tok = self.toks[self.i]
        return tok.kind == "kw" and tok.value == word

    def error(self, pos: int, message: str) -> FilterError:
        return syntax_error(self.text, pos, message)

    def describe(self, tok: Token) -> str:
        if tok.kind == "eof":
            return "the end of the filter"
        raw = self.text[tok.pos : tok.end]
        if len(raw) > 24:
            raw = raw[:21] + "..."
        kinds = {"num": "number", "str": "string", "ident": "name", "qident": "name",
                 "kw": "keyword"}
        return f"{kinds[tok.kind]} {raw}" if tok.kind in kinds else repr(raw)

    # grammar -------------------------------------------------------------

    def parse(self) -> Node:
        node = self.or_(0)
        tok = self.peek()
        if tok.kind == ")":
            raise self.error(tok.pos, "unbalanced ')': there is no matching '('")
        if tok.kind != "eof":
            raise self.error(
                tok.pos,
                f"unexpected {self.describe(tok)} after a complete condition; "
                "join conditions with AND or OR",
            )
        return node

    def build(self, cls: type[Node], arg: Any, pos: int) -> Node:
        try:
            return cls(arg)  # type: ignore[call-arg]
        except DepthError as e:
            raise self.error(pos, str(e)) from None

    def or_(self, depth: int) -> Node:
        start = self.peek().pos
        items = [self.and_(depth)]
        while self.is_kw("OR"):
            self.next()
            items.append(self.and_(depth))
        return items[0] if len(items) == 1 else self.build(Or, items, start)

    def and_(self, depth: int) -> Node:
        start = self.peek().pos
        items = [self.not_(depth)]
        while self.is_kw("AND"):
            self.next()
            items.append(self.not_(depth))
        return items[0] if len(items) == 1 else self.build(And, items, start)

    def not_(self, depth: int) -> Node:
        tok = self.peek()
        if (tok.kind == "kw" and tok.value == "NOT") or tok.kind == "(":
            if depth >= MAX_DEPTH:
                raise self.error(
                    tok.pos,
                    f"filter nested too deeply: more than {MAX_DEPTH} levels of parentheses/NOT",
                )
            self.next()
            if tok.kind == "(":
                node = self.or_(depth + 1)
                close = self.peek()
                if close.kind != ")":
                    if close.kind == "eof":
                        raise self.error(tok.pos, "unbalanced '(': it is never closed")
                    raise self.error(
                        close.pos,
                        f"expected AND, OR or ')' but found {self.describe(close)}",
                    )
                self.next()
                return node
            return self.build(Not, self.not_(depth + 1), tok.pos)
        if tok.kind == "ident" and tok.value.upper() in ("ANY", "HAS_ID") and \
                self.toks[self.i + 1].kind == "(":
            return self.special(tok, depth)
        return self.comparison()

    def special(self, tok: Token, depth: int) -> Node:
        """``ANY(<condition on one field>)`` or ``HAS_ID(id, ...)`` (a name
        followed by '(' is no comparison, so fields named so are unaffected)."""
        self.next()
        if tok.value.upper() == "HAS_ID":
            ids = self.value_list("HAS_ID")
            try:
                return HasId(ids)  # type: ignore[arg-type]  # ids are checked
            except FilterError as e:
                raise self.error(tok.pos, str(e)) from None
        if depth >= MAX_DEPTH:
            raise self.error(tok.pos, f"filter nested too deeply: more than {MAX_DEPTH} levels")
        open_ = self.next()
        inner = self.or_(depth + 1)
        close = self.peek()
        if close.kind != ")":
            if close.kind == "eof":
                raise self.error(open_.pos, "unbalanced '(': it is never closed")
            raise self.error(close.pos, f"expected AND, OR or ')' but found {self.describe(close)}")
        self.next()
        try:
            return AnyElem(inner)
        except FilterError as e:
            raise self.error(tok.pos, str(e)) from None

    def path(self) -> tuple[str, ...]:
        parts = [self.name()]
        while self.peek().kind == ".":
            self.next()
            parts.append(self.name())
        return tuple(parts)

    def name(self) -> str:
        tok = self.next()
        if tok.kind in ("ident", "qident"):
            return tok.value
        if tok.kind == "kw":
            raw = self.text[tok.pos : tok.end]
            raise self.error(
                tok.pos,
                f"expected a field name but found keyword {raw}; "
                f"to use it as a field name write it in backticks: `{raw}`",
            )
        raise self.error(tok.pos, f"expected a field name but found {self.describe(tok)}")

    def comparison(self) -> Node:
        path = self.path()
        tok = self.next()
        if tok.kind in ("=", "!=", "<", "<=", ">", ">="):
            return Compare(path, tok.kind, self.value(tok.kind))
        if tok.kind == "==":
            raise self.error(tok.pos, "'==' is not an operator; use '=' for equality")
        if tok.kind == "<>":
            raise self.error(tok.pos, "'<>' is not an operator; use '!=' for 'not equal'")
        if tok.kind == "kw":
            word = tok.value
            if word == "IN":
                return InList(path, self.value_list("IN"), False)
            if word == "NOT":
                if not self.is_kw("IN"):
                    raise self.error(
                        self.peek().pos,
                        f"expected IN after NOT but found {self.describe(self.peek())} "
                        "(to negate a condition put NOT before it)",
                    )
                self.next()
                return InList(path, self.value_list("NOT IN"), True)
            if word == "CONTAINS":
                return Contains(path, self.value("CONTAINS"))
            if word == "STARTSWITH":
                arg = self.peek()
                prefix = self.value("STARTSWITH")
                if not isinstance(prefix, str):
                    raise self.error(arg.pos, "STARTSWITH needs a quoted string, e.g. 'abc'")
                return StartsWith(path, prefix)
            if word == "EXISTS":
                return Exists(path)
            if word == "IS":
                negate = self.is_kw("NOT")
                if negate:
                    self.next()
                if not self.is_kw("NULL"):
                    raise self.error(
                        self.peek().pos,
                        f"expected NULL after IS{' NOT' if negate else ''} "
                        f"but found {self.describe(self.peek())}",
                    )
                self.next()
                return IsNull(path, negate)
        raise self.error(
            tok.pos,
            f"expected an operator ({_OPS_HELP}) after the field name but found "
            f"{self.describe(tok)}",
        )

    def value(self, after: str) -> Scalar:
        tok = self.next()
        if tok.kind in ("num", "str"):
            return tok.value
        if tok.kind == "kw" and tok.value in ("TRUE", "FALSE", "NULL"):
            return {"TRUE": True, "FALSE": False, "NULL": None}[tok.value]
        if tok.kind == "ident" and tok.value.lower() in ("inf", "infinity", "nan"):
            raise self.error(
                tok.pos, f"{tok.value} is not allowed: metadata cannot hold NaN or infinity"
            )
        hint = ""
        if tok.kind in ("ident", "qident"):
            hint = f"; quote text values, e.g. '{tok.value}'"
        elif tok.kind in ("(", "["):
            hint = "; a list of values is only allowed after IN / NOT IN"
        raise self.error(
            tok.pos,
            f"expected a value (a quoted string, a number, true, false or null) after {after} "
            f"but found {self.describe(tok)}{hint}",
        )

    def value_list(self, after: str) -> tuple[Scalar, ...]:
        open_ = self.next()
        if open_.kind not in ("(", "["):
            raise self.error(
                open_.pos,
                f"{after} needs a list of values in parentheses or brackets, e.g. (1, 2) or "
                f"['a', 'b']; found {self.describe(open_)}",
            )
        close = ")" if open_.kind == "(" else "]"
        if self.peek().kind == close:
            raise self.error(self.peek().pos, f"empty list: {after} needs at least one value")
        values = [self.value(after)]
        while True:
            tok = self.next()
            if tok.kind == close:
                return tuple(values)
            if tok.kind == ",":
                values.append(self.value("','"))
                continue
            if tok.kind == "eof":
                raise self.error(open_.pos, f"unbalanced {open_.kind!r}: the list is never closed")
            raise self.error(
                tok.pos, f"expected ',' or {close!r} in the list but found {self.describe(tok)}"
            )


def parse_string(text: str) -> Node:
    """Parse the string form into an AST node (short filters are cached)."""
    if len(text) <= 2048:
        return _parse_cached(text)
    return _parse(text)


@functools.lru_cache(maxsize=512)
def _parse_cached(text: str) -> Node:
    return _parse(text)


def _parse(text: str) -> Node:
    if len(text) > MAX_LENGTH:
        raise syntax_error(
            text[: MAX_LENGTH + 1],
            MAX_LENGTH,
            f"filter too long ({len(text)} characters; the limit is {MAX_LENGTH})",
        )
    if not text.strip():
        raise syntax_error(text, 0, "empty filter; pass None for no filter")
    return _Parser(text).parse()


def parse_path_text(text: str) -> tuple[str, ...]:
    """Parse a field path written in the string syntax, e.g. ``user.`odd.key```."""
    if len(text) > MAX_LENGTH:
        raise syntax_error(text[: MAX_LENGTH + 1], MAX_LENGTH, "field name too long")
    parser = _Parser(text)
    path = parser.path()
    tok = parser.peek()
    if tok.kind != "eof":
        raise parser.error(tok.pos, f"unexpected {parser.describe(tok)} in a field name")
    return path
