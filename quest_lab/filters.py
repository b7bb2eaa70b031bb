"""Row filters (`--where`): a small grammar of our own, compiled to SQL or to a boolean mask.

    filter     := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" or_expr ")" | comparison
    comparison := operand (OP operand)+                      # chained: 1e6 < N <= 1e8
                | COLUMN ["not"] "in" "[" value ("," value)* "]"
    operand    := COLUMN | value
    value      := NUMBER | STRING
    OP         := "==" | "!=" | "<" | "<=" | ">" | ">="

COLUMN is a known column name (letters, digits, `_`); NUMBER a decimal literal (`4`, `-1.5`, `1e6`; at
most 32 characters, finite); STRING is quoted with `'` or `"` (no escapes, at most 200 characters).
Nothing else exists: no attribute access, calls, subscripts, arithmetic, `@variables` or backticks, so a
filter can only compare columns with constants.  Text columns take `==`, `!=`, `in`, `not in`.
A comparison with a missing value (NULL / NaN) is false, in SQL and in pandas alike.

`parse(text, schema)` checks everything against the columns it will run on and returns a `Filter`;
`Filter.mask(frame)` gives a boolean numpy array, `Filter.sql(columns)` a SQLAlchemy expression.
Input size, nesting and literal sizes are bounded, so parsing is linear and fast on any input.
"""
from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Union

import numpy as np

Kind = Literal["number", "text"]

MAX_LENGTH = 2000  # characters in a filter
MAX_DEPTH = 32  # nested parentheses / `not`
MAX_NUMBER_CHARS = 32
MAX_STRING_CHARS = 200
MAX_LIST = 1000
EXAMPLE = "e.g. \"w_bits >= 2 and N > 1e6\" or \"quantizer in ['quest', 'ste']\""

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
_TEXT_OPS = ("==", "!=")
_KEYWORDS = ("and", "or", "not", "in")
_HINTS = {"`": "backticks are not allowed", "@": "@variables are not allowed",
          ".": "attribute access is not allowed", "=": "compare with ==", "&": "write and", "|": "write or",
          "~": "write not", "!": "write not, or != to compare", "'": "unterminated string",
          '"': "unterminated string", **{c: "arithmetic is not allowed" for c in "*/+-%^"}}
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)(?![A-Za-z0-9_.])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>'[^'\n]*'|"[^"\n]*")
  | (?P<op>==|!=|<=|>=|<|>)
  | (?P<punct>[()\[\],])
""", re.VERBOSE)


class FilterError(ValueError):
    """A filter that is not in the grammar or does not fit the columns.  str() is one line."""

    def __init__(self, text: str, problem: str) -> None:
        shown = text if len(text) <= 120 else text[:117] + "..."
        super().__init__(f"--where {shown!r} is not a valid filter: {problem}")


# -- syntax tree ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind


@dataclass(frozen=True)
class Value:
    value: float | str

    @property
    def kind(self) -> Kind:
        return "text" if isinstance(self.value, str) else "number"


Operand = Union[Column, Value]


@dataclass(frozen=True)
class Compare:
    left: Operand
    op: str
    right: Operand


@dataclass(frozen=True)
class In:
    column: Column
    values: tuple[float | str, ...]
    negate: bool


@dataclass(frozen=True)
class Not:
    operand: "Node"


@dataclass(frozen=True)
class BoolOp:
    op: Literal["and", "or"]
    operands: tuple["Node", ...]


Node = Union[Compare, In, Not, BoolOp]


# -- tokenizer and parser ------------------------------------------------------------------------
@dataclass(frozen=True)
class _Tok:
    kind: str  # number | name | string | op | punct | keyword | end
    text: str
    pos: int


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            hint = _HINTS.get(ch, "not part of the grammar")
            raise ValueError(f"unexpected character {ch!r} at position {pos}: {hint}")
        kind = m.lastgroup or ""
        if kind != "ws":
            word = m.group()
            if kind == "name" and word in _KEYWORDS:
                kind = "keyword"
            out.append(_Tok(kind, word, pos))
        pos = m.end()
    out.append(_Tok("end", "", len(text)))
    return out


class _Parser:
    def __init__(self, text: str, schema: Mapping[str, Kind]) -> None:
        self.text, self.schema = text, schema
        self.toks = _tokens(text)
        self.i = 0
        self.depth = 0

    # helpers
    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def _next(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def _accept(self, kind: str, text: str | None = None) -> _Tok | None:
        tok = self.tok
        if tok.kind == kind and (text is None or tok.text == text):
            self.i += 1
            return tok
        return None

    def _expect(self, kind: str, text: str, what: str) -> _Tok:
        tok = self._accept(kind, text)
        if tok is None:
            raise ValueError(f"expected {what} at position {self.tok.pos}, found {self._show(self.tok)}")
        return tok

    @staticmethod
    def _show(tok: _Tok) -> str:
        return "the end" if tok.kind == "end" else repr(tok.text)

    # grammar
    def parse(self) -> Node:
        node = self._or()
        if self.tok.kind != "end":
            tok = self.tok
            extra = " (calls are not allowed)" if tok.text == "(" else ""
            raise ValueError(f"unexpected {self._show(tok)} at position {tok.pos}{extra}; join conditions "
                             "with and / or")
        return node

    def _or(self) -> Node:
        parts = [self._and()]
        while self._accept("keyword", "or"):
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else BoolOp("or", tuple(parts))

    def _and(self) -> Node:
        parts = [self._not()]
        while self._accept("keyword", "and"):
            parts.append(self._not())
        return parts[0] if len(parts) == 1 else BoolOp("and", tuple(parts))

    def _not(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
        try:
            if self._accept("keyword", "not"):
                return Not(self._not())
            if self._accept("punct", "("):
                node = self._or()
                self._expect("punct", ")", "')'")
                return node
            return self._comparison()
        finally:
            self.depth -= 1

    def _comparison(self) -> Node:
        first = self._operand()
        if isinstance(first, Column) and (self.tok.kind == "keyword" and self.tok.text in ("in", "not")):
            negate = bool(self._accept("keyword", "not"))
            self._expect("keyword", "in", "'in'")
            return self._in(first, negate)
        if self.tok.kind != "op":
            if self.tok.text == "(" and isinstance(first, Column):
                raise ValueError(f"{first.name}(...): calls are not allowed")
            alone = first.name if isinstance(first, Column) else first.value
            raise ValueError(f"{alone!r} alone is not a condition: a filter must be a true/false condition per "
                             f"run, {EXAMPLE}")
        nodes: list[Node] = []
        left = first
        while self.tok.kind == "op":
            op = self._next().text
            right = self._operand()
            nodes.append(self._check_compare(left, op, right))
            left = right
        return nodes[0] if len(nodes) == 1 else BoolOp("and", tuple(nodes))

    def _in(self, column: Column, negate: bool) -> Node:
        self._expect("punct", "[", "'[' after in")
        values: list[float | str] = []
        while True:
            if values and self._accept("punct", "]"):
                break
            v = self._operand()
            if not isinstance(v, Value):
                raise ValueError(f"the list after 'in' holds numbers or quoted strings, not the column {v.name!r}")
            if v.kind != column.kind:
                raise ValueError(self._kind_problem(column, v))
            values.append(v.value)
            if len(values) > MAX_LIST:
                raise ValueError(f"the list after 'in' has more than {MAX_LIST} values")
            if not self._accept("punct", ","):
                self._expect("punct", "]", "',' or ']'")
                break
        return In(column, tuple(values), negate)

    def _operand(self) -> Operand:
        tok = self._next()
        if tok.kind == "number":
            if len(tok.text) > MAX_NUMBER_CHARS:
                raise ValueError(f"number {tok.text[:20]}... has more than {MAX_NUMBER_CHARS} characters")
            x = float(tok.text)
            if not math.isfinite(x):
                raise ValueError(f"number {tok.text} is not finite")
            return Value(x)
        if tok.kind == "string":
            if len(tok.text) - 2 > MAX_STRING_CHARS:
                raise ValueError(f"string at position {tok.pos} has more than {MAX_STRING_CHARS} characters")
            return Value(tok.text[1:-1])
        if tok.kind == "name":
            if tok.text not in self.schema:
                raise ValueError(f"unknown column {tok.text!r}; columns: {', '.join(sorted(self.schema))}")
            return Column(tok.text, self.schema[tok.text])
        raise ValueError(f"expected a column, a number or a quoted string at position {tok.pos}, "
                         f"found {self._show(tok)}")

    @staticmethod
    def _kind_problem(column: Column, value: Operand) -> str:
        if column.kind == "text":
            return f"{column.name} is a text column: compare it with a quoted string, e.g. {column.name} == 'quest'"
        return f"{column.name} is a numeric column: compare it with a number, e.g. {column.name} >= 2"

    def _check_compare(self, left: Operand, op: str, right: Operand) -> Compare:
        if not (isinstance(left, Column) or isinstance(right, Column)):
            raise ValueError(f"{op!r} compares two constants; one side must be a column")
        col = left if isinstance(left, Column) else right
        other = right if col is left else left
        if other.kind != col.kind:
            raise ValueError(self._kind_problem(col, other))
        if col.kind == "text" and op not in _TEXT_OPS:
            raise ValueError(f"text column {col.name} takes ==, !=, in or not in, not {op}")
        return Compare(left, op, right)


def parse(text: str, schema: Mapping[str, Kind]) -> "Filter":
    """Parse and check `text` against the columns (name -> kind) it will filter.  Raises FilterError."""
    if not isinstance(text, str) or not text.strip():
        raise FilterError(str(text), f"empty filter; {EXAMPLE}")
    if len(text) > MAX_LENGTH:
        raise FilterError(text, f"longer than {MAX_LENGTH} characters")
    try:
        return Filter(text, _Parser(text, schema).parse())
    except ValueError as exc:
        raise FilterError(text, str(exc)) from None


# -- compilation ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Filter:
    text: str
    tree: Node

    def mask(self, frame: Any) -> np.ndarray:
        """Boolean mask over the rows of a pandas DataFrame."""
        cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

        def column(c: Column) -> tuple[np.ndarray, np.ndarray]:
            if c.name not in cache:
                cache[c.name] = _values(frame[c.name], c.kind)
            return cache[c.name]

        def operand(o: Operand) -> tuple[Any, np.ndarray | bool]:
            if isinstance(o, Column):
                return column(o)
            return o.value, True

        def ev(node: Node) -> np.ndarray:
            if isinstance(node, BoolOp):
                parts = [ev(p) for p in node.operands]
                return np.logical_and.reduce(parts) if node.op == "and" else np.logical_or.reduce(parts)
            if isinstance(node, Not):
                return ~ev(node.operand)
            if isinstance(node, In):
                vals, ok = column(node.column)
                hit = np.isin(vals, np.array(node.values, dtype=object if node.column.kind == "text" else float))
                return ok & (~hit if node.negate else hit)
            (lv, lok), (rv, rok) = operand(node.left), operand(node.right)
            ok = np.logical_and(lok, rok) & np.ones(len(frame), dtype=bool)
            with np.errstate(invalid="ignore"):
                res = _OPS[node.op](lv, rv)
            return ok & np.asarray(res, dtype=bool)

        return np.asarray(ev(self.tree), dtype=bool)

    def sql(self, columns: Mapping[str, Any]) -> Any:
        """A SQLAlchemy boolean expression; `columns` maps column names to SQL columns."""
        from sqlalchemy import and_, literal, not_, or_

        def operand(o: Operand) -> Any:
            return columns[o.name] if isinstance(o, Column) else literal(o.value)

        def not_null(*ops: Operand) -> list[Any]:
            return [columns[o.name].is_not(None) for o in ops if isinstance(o, Column)]

        def ev(node: Node) -> Any:
            if isinstance(node, BoolOp):
                parts = [ev(p) for p in node.operands]
                return and_(*parts) if node.op == "and" else or_(*parts)
            if isinstance(node, Not):
                return not_(ev(node.operand))
            if isinstance(node, In):
                col = columns[node.column.name]
                return and_(col.is_not(None), col.not_in(node.values) if node.negate else col.in_(node.values))
            return and_(*not_null(node.left, node.right), _OPS[node.op](operand(node.left), operand(node.right)))

        return ev(self.tree)


def _values(series: Any, kind: Kind) -> tuple[np.ndarray, np.ndarray]:
    """(values, present) for one column: floats for numbers, str objects for text."""
    import pandas as pd

    if kind == "number":
        vals = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        return vals, ~np.isnan(vals)
    present = series.notna().to_numpy(dtype=bool)
    vals = np.array([str(v) if ok else "" for v, ok in zip(series.tolist(), present)], dtype=object)
    return vals, present


def frame_schema(frame: Any) -> dict[str, Kind]:
    """The filterable columns of a DataFrame: identifier-named numeric and text columns."""
    import pandas as pd

    out: dict[str, Kind] = {}
    for name in frame.columns:
        if not isinstance(name, str) or not name.isidentifier() or name in _KEYWORDS:
            continue
        dtype = frame[name].dtype
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
            out[name] = "number"
        elif pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
            out[name] = "text"
    return out
