"""Tokenizer of the string form of filters (see :mod:`vecstore._filter`).

One precompiled regex splits the text into tokens; every error is a
:class:`FilterError` naming the 0-based character offset, with an excerpt and
a caret.
"""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple

from .._errors import FilterError
from .values import KEYWORDS

#: Longest accepted filter string, in characters.
MAX_LENGTH = 64 * 1024
_MAX_NUMBER_CHARS = 300

_TOKEN = re.compile(
    r"""
     (?P<ws>\s+)
    |(?P<num>-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
    |(?P<ident>[A-Za-z_][A-Za-z0-9_-]*)
    |(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    |(?P<qident>`(?:[^`]|``)*`)
    |(?P<op><=|>=|!=|==|<>|=|<|>)
    |(?P<punct>[()\[\],.])
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|(.))", re.DOTALL)
_SIMPLE_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r"}


class Token(NamedTuple):
    """One token: ``kind`` is num/str/ident/qident/kw/op/punct/eof."""

    kind: str
    value: Any
    pos: int
    end: int


def syntax_error(text: str, pos: int, message: str) -> FilterError:
    """A :class:`FilterError` naming ``pos`` with an excerpt and a caret."""
    start = max(0, pos - 30)
    end = min(len(text), pos + 30)
    before = "..." if start > 0 else ""
    after = "..." if end < len(text) else ""
    snippet = "".join(c if c.isprintable() else " " for c in text[start:end])
    caret = " " * (len(before) + pos - start) + "^"
    err = FilterError(
        f"invalid filter at position {pos}: {message}\n    {before}{snippet}{after}\n    {caret}"
    )
    err.position = pos  # type: ignore[attr-defined]
    return err


def _decode_string(text: str, start: int, end: int) -> str:
    """Decode the escapes of the quoted string ``text[start:end]``."""
    body = text[start + 1 : end - 1]
    if "\\" not in body:
        return body
    out: list[str] = []
    last = 0
    high_end = -1  # end of an escaped high surrogate that a low one may join
    for m in _ESCAPE.finditer(body):
        out.append(body[last : m.start()])
        last = m.end()
        if m.group(1) is not None:
            code = int(m.group(1), 16)
            if 0xDC00 <= code <= 0xDFFF and high_end == m.start():
                out.pop()  # the empty literal run between the two escapes
                code = 0x10000 + ((ord(out.pop()) - 0xD800) << 10) + code - 0xDC00
            out.append(chr(code))
            high_end = m.end() if 0xD800 <= code <= 0xDBFF else -1
            continue
        high_end = -1
        ch = m.group(2)
        if ch == "u":
            raise syntax_error(
                text, start + 1 + m.start(), "\\u needs exactly 4 hex digits, e.g. \\u00e9"
            )
        if ch not in _SIMPLE_ESCAPES:
            raise syntax_error(
                text,
                start + 1 + m.start(),
                f"unknown escape \\{ch} in a string; use \\\\ \\' \\\" \\n \\t \\r or \\uXXXX",
            )
        out.append(_SIMPLE_ESCAPES[ch])
    out.append(body[last:])
    return "".join(out)


def _number(text: str, start: int, end: int) -> int | float:
    raw = text[start:end]
    if len(raw) > _MAX_NUMBER_CHARS:
        raise syntax_error(text, start, f"number too long (over {_MAX_NUMBER_CHARS} characters)")
    if "." in raw or "e" in raw or "E" in raw:
        value = float(raw)
        if not math.isfinite(value):
            raise syntax_error(text, start, f"number {raw} is out of range for a float")
        return value
    return int(raw)


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an ``eof`` token."""
    tokens: list[Token] = []
    pos, n = 0, len(text)
    match = _TOKEN.match
    while pos < n:
        m = match(text, pos)
        if m is None:
            ch = text[pos]
            if ch in "\"'":
                msg = f"unterminated string: no closing {ch}"
            elif ch == "`":
                msg = "unterminated backtick-quoted name: no closing `"
            elif ch == "!":
                msg = "unexpected '!'; use != for 'not equal' or NOT to negate"
            elif text.startswith(("&&", "||"), pos):
                msg = f"unexpected {text[pos:pos + 2]!r}; use AND / OR"
            elif ch == "-":
                msg = "unexpected '-': a number must follow it (inf and nan are not allowed)"
            else:
                msg = f"unexpected character {ch!r}"
            raise syntax_error(text, pos, msg)
        kind = m.lastgroup
        end = m.end()
        if kind == "ws":
            pos = end
            continue
        if kind == "num":
            if end < n and (text[end].isalnum() or text[end] in "_."):
                raise syntax_error(
                    text,
                    pos,
                    "malformed number (a field name starting with a digit must be in backticks)",
                )
            tokens.append(Token("num", _number(text, pos, end), pos, end))
        elif kind == "ident":
            word = m.group()
            upper = word.upper()
            if upper in KEYWORDS:
                tokens.append(Token("kw", upper, pos, end))
            else:
                tokens.append(Token("ident", word, pos, end))
        elif kind == "str":
            tokens.append(Token("str", _decode_string(text, pos, end), pos, end))
        elif kind == "qident":
            tokens.append(Token("qident", m.group()[1:-1].replace("``", "`"), pos, end))
        else:  # op / punct
            tokens.append(Token(m.group(), m.group(), pos, end))
        pos = end
    tokens.append(Token("eof", None, n, n))
    return tokens
