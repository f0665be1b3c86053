"""Map a location in the parsed data, like ("rounds", 1, "types", 2, "count"), to a TOML line.

tomllib keeps no positions, so this scans the (already valid) text once: table headers
`[a.b]`, array-of-tables headers `[[a.b]]` (counted, so the n-th one gets index n), `key = value`
lines with dotted keys, inline tables and arrays. A location that is not in the file (a missing
key) falls back to its nearest recorded ancestor: the header of the table the key belongs in.
"""

from __future__ import annotations

import re
import tomllib
from typing import NamedTuple

Loc = tuple[str | int, ...]

_TOKEN = re.compile(
    r'''
    (?P<string>"""(?:[^\\]|\\.)*?"""(?!")|'\'\'[\s\S]*?\'\'\'(?!')
        |"(?:[^"\\\n]|\\.)*"|'[^'\n]*')
    |(?P<comment>\#[^\n]*)
    |(?P<newline>\n)
    |(?P<space>[ \t\r]+)
    |(?P<punct>[\[\]{}=,])
    |(?P<atom>[^\s\[\]{}=,"'\#]+)
    ''',
    re.VERBOSE,
)


class _Token(NamedTuple):
    kind: str
    text: str
    line: int
    start: int
    end: int


_END = _Token("end", "", 0, -1, -1)


def _tokens(text: str) -> list[_Token]:
    found: list[_Token] = []
    line = 1
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup or "atom"
        if kind != "space":
            found.append(_Token(kind, match.group(), line, match.start(), match.end()))
        line += match.group().count("\n")
    return found


def _key_parts(token: _Token) -> list[str]:
    if token.kind == "string":
        return [str(tomllib.loads(f"k = {token.text}")["k"])]
    return [part for part in token.text.split(".") if part]


class LineIndex:
    """Line numbers (1-based) of the tables, keys and array items of one TOML text."""

    def __init__(self, text: str) -> None:
        self._lines = _Scanner(text).scan()

    def line_of(self, loc: Loc) -> int:
        """The line of `loc`, or of its nearest ancestor in the text; line 1 if none is."""
        for size in range(len(loc), 0, -1):
            line = self._lines.get(loc[:size])
            if line is not None:
                return line
        return 1


class _Scanner:
    def __init__(self, text: str) -> None:
        self._tokens = _tokens(text)
        self._pos = 0
        self._table: Loc = ()
        self._arrays: dict[Loc, int] = {}  # array-of-tables path -> how many so far
        self._lines: dict[Loc, int] = {}

    def scan(self) -> dict[Loc, int]:
        while self._peek() is not _END:
            self._statement()
        return self._lines

    def _peek(self) -> _Token:
        return self._tokens[self._pos] if self._pos < len(self._tokens) else _END

    def _next(self) -> _Token:
        token = self._peek()
        self._pos += 1
        return token

    def _record(self, loc: Loc, line: int) -> None:
        for size in range(1, len(loc) + 1):
            self._lines.setdefault(loc[:size], line)

    def _statement(self) -> None:
        token = self._peek()
        if token.kind in ("newline", "comment"):
            self._next()
        elif token.text == "[":
            self._header()
        else:
            self._key_value(self._table)

    def _header(self) -> None:
        opening = self._next()
        is_array = self._peek().text == "[" and self._peek().start == opening.end
        if is_array:
            self._next()
        keys = self._keys_until("]")
        while self._peek().text == "]":
            self._next()
        self._table = self._resolve(keys, is_array)
        self._record(self._table, opening.line)

    def _resolve(self, keys: list[str], is_array: bool) -> Loc:
        loc: Loc = ()
        for position, key in enumerate(keys):
            loc = (*loc, key)
            if position == len(keys) - 1 and is_array:
                count = self._arrays.get(loc, 0)
                self._arrays[loc] = count + 1
                return (*loc, count)
            if loc in self._arrays:
                loc = (*loc, self._arrays[loc] - 1)
        return loc

    def _keys_until(self, stop: str) -> list[str]:
        keys: list[str] = []
        while self._peek().text != stop and self._peek().kind not in ("newline", "end"):
            keys.extend(_key_parts(self._next()))
        return keys

    def _key_value(self, table: Loc) -> None:
        line = self._peek().line
        loc = (*table, *self._keys_until("="))
        if self._peek().text != "=":
            return
        self._next()
        self._record(loc, line)
        self._value(loc)

    def _value(self, loc: Loc) -> None:
        text = self._peek().text
        if text == "{":
            self._inline_table(loc)
        elif text == "[":
            self._array(loc)
        else:
            self._scalar()

    def _scalar(self) -> None:
        self._next()  # always advance, so a stray token cannot stall the scan
        # A date-time may be written with a space ("2022-03-05 10:00:00"): two atoms.
        while self._peek().kind in ("atom", "string"):
            self._next()

    def _inline_table(self, loc: Loc) -> None:
        self._next()
        while self._peek() is not _END:
            token = self._peek()
            if token.text == "}":
                self._next()
                return
            if token.text == "," or token.kind in ("newline", "comment"):
                self._next()
            else:
                self._key_value(loc)

    def _array(self, loc: Loc) -> None:
        self._next()
        index = 0
        while self._peek() is not _END:
            token = self._peek()
            if token.text == "]":
                self._next()
                return
            if token.text == ",":
                index += 1
            if token.text == "," or token.kind in ("newline", "comment"):
                self._next()
                continue
            self._record((*loc, index), token.line)
            self._value((*loc, index))
