"""Model formulas in the lme4 / brms / bambi syntax, with one grouping factor.

    y ~ x1 + x2 + (1 + x1 | g)      correlated group effects (LKJ prior on their correlation)
    y ~ x1 + (1 + x1 || g)          independent group effects
    y ~ x + (1 | g)                 varying intercepts
    y ~ 1 + x + (0 + x | g)         varying slopes only (the notebook's model)
    y ~ 0 + x                       no intercept; ``- 1`` works too
    log(y) ~ C(floor) + x:z + a*b   functions, forced categorical, interactions

:func:`parse_formula` turns the text into a :class:`Formula`: the response, the common
terms and (at most) one :class:`GroupTerm`. Nothing here looks at data: which variables
are categorical, and the columns they expand to, is decided by
:mod:`hierlin_stan.model.design`. Every mistake raises :class:`FormulaError`, which names
the problem and shows where it is in the formula.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Iterator

__all__ = ["FUNCTIONS", "Factor", "Term", "GroupTerm", "Formula", "FormulaError", "parse_formula"]

#: Functions allowed on a variable: numeric transforms, and ``C`` (treat as categorical).
FUNCTIONS: tuple[str, ...] = ("C", "exp", "log", "log10", "log1p", "log2", "sqrt")


class FormulaError(ValueError):
    """A formula that cannot be read or fitted; the message names the problem and where it is."""


@dataclasses.dataclass(frozen=True)
class Factor:
    """One variable in a term: a column, optionally through a function.

    Attributes
    ----------
    column : str
        The data column.
    function : str or None
        One of :data:`FUNCTIONS`, or None.
    """

    column: str
    function: str | None = None

    @property
    def categorical(self) -> bool:
        """Forced categorical with ``C(...)``."""
        return self.function == "C"

    @property
    def name(self) -> str:
        """As written: ``x``, ``log(x)``, ``C(floor)``."""
        return self.column if self.function is None else f"{self.function}({self.column})"


@dataclasses.dataclass(frozen=True)
class Term:
    """A product of factors (an interaction); the empty product is the intercept."""

    factors: tuple[Factor, ...] = ()

    @property
    def is_intercept(self) -> bool:
        """True for the intercept."""
        return not self.factors

    @property
    def name(self) -> str:
        """``Intercept``, ``x``, ``x:z``."""
        return "Intercept" if self.is_intercept else ":".join(f.name for f in self.factors)

    def key(self) -> frozenset[Factor]:
        """Identity of the term regardless of factor order (``a:b`` is ``b:a``)."""
        return frozenset(self.factors)


@dataclasses.dataclass(frozen=True)
class GroupTerm:
    """``(terms | factor)`` or ``(terms || factor)``.

    Attributes
    ----------
    terms : tuple of Term
        The group-specific terms, the intercept first when present.
    factor : str
        The grouping column.
    correlated : bool
        ``|`` (True): the group effects are correlated; ``||``: independent.
    """

    terms: tuple[Term, ...]
    factor: str
    correlated: bool

    @property
    def text(self) -> str:
        """Canonical text, e.g. ``(1 + x | g)``."""
        parts = [("1" if t.is_intercept else t.name) for t in self.terms]
        if not any(t.is_intercept for t in self.terms):
            parts.insert(0, "0")
        return f"({' + '.join(parts)} {'|' if self.correlated else '||'} {self.factor})"


@dataclasses.dataclass(frozen=True)
class Formula:
    """A parsed formula.

    Attributes
    ----------
    text : str
        What the user wrote.
    response : Factor
        The response, e.g. ``y`` or ``log(radon)``.
    terms : tuple of Term
        The common terms, the intercept first when present.
    group : GroupTerm or None
        The group-specific part; None for a model without group effects.
    """

    text: str
    response: Factor
    terms: tuple[Term, ...]
    group: GroupTerm | None

    @property
    def columns(self) -> list[str]:
        """Every data column the formula uses, in order of first use."""
        seen: dict[str, None] = {self.response.column: None}
        for term in self.terms + (self.group.terms if self.group else ()):
            for f in term.factors:
                seen.setdefault(f.column, None)
        if self.group is not None:
            seen.setdefault(self.group.factor, None)
        return list(seen)

    @property
    def canonical(self) -> str:
        """The formula written out in full: ``y ~ 1 + x + (1 + x | g)``."""
        parts = [("1" if t.is_intercept else t.name) for t in self.terms]
        if not any(t.is_intercept for t in self.terms):
            parts.insert(0, "0")
        if self.group is not None:
            parts.append(self.group.text)
        return f"{self.response.name} ~ {' + '.join(parts)}"

    def __str__(self) -> str:
        return self.canonical


# --------------------------------------------------------------------- scanner
_TOKEN = re.compile(
    r"\s*(?:(?P<name>[A-Za-z_.][A-Za-z0-9_.]*)|`(?P<quoted>[^`]+)`|(?P<number>\d+(?:\.\d*)?)"
    r"|(?P<op>\|\||[~+\-*:()|,/^%=]))"
)


@dataclasses.dataclass(frozen=True)
class _Token:
    kind: str  # "name", "number", "op", "end"
    text: str
    pos: int  # 0-based offset in the formula


def _tokens(text: str) -> list[_Token]:
    out = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            start = pos + (len(text[pos:]) - len(text[pos:].lstrip()))
            raise _error(text, start, f"unexpected character {text[start]!r}")
        kind = m.lastgroup or "op"
        start = m.start(kind)
        value = m.group(kind)
        out.append(_Token("name" if kind == "quoted" else kind, value, start))
        pos = m.end()
    out.append(_Token("end", "", len(text)))
    return out


def _error(text: str, pos: int, message: str) -> FormulaError:
    return FormulaError(f"formula {text!r}: {message} at position {pos + 1}\n    {text}\n    {' ' * pos}^")


# ---------------------------------------------------------------------- parser
class _Parser:
    """Recursive descent over the tokens.

    formula  := factor '~' rhs
    rhs      := ['-'] item (('+' | '-') item)*
    item     := '(' rhs ('|' | '||') NAME ')'  (a group term)  |  product
    product  := atom ((':' | '*') atom)*
    atom     := NAME | NAME '(' NAME ')' | '0' | '1'
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    # helpers
    @property
    def tok(self) -> _Token:
        return self.toks[self.i]

    def take(self) -> _Token:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def fail(self, message: str, tok: _Token | None = None) -> FormulaError:
        tok = tok or self.tok
        return _error(self.text, tok.pos, message)

    def expect(self, op: str, what: str) -> _Token:
        if self.tok.kind == "op" and self.tok.text == op:
            return self.take()
        found = "the end" if self.tok.kind == "end" else repr(self.tok.text)
        raise self.fail(f"expected {what}, found {found}")

    # grammar
    def formula(self) -> tuple[Factor, list[tuple[str, object, _Token]]]:
        if self.tok.kind == "end":
            raise self.fail("the formula is empty; write e.g. 'y ~ x + (1 | g)'")
        if self.tok.kind == "op" and self.tok.text == "~":
            raise self.fail("the response is missing before '~'; write e.g. 'y ~ x'")
        response = self.factor()
        if not (self.tok.kind == "op" and self.tok.text == "~"):
            found = "the end" if self.tok.kind == "end" else repr(self.tok.text)
            raise self.fail(f"expected '~' after the response, found {found}")
        self.take()
        if self.tok.kind == "end":
            raise self.fail("nothing after '~'; write the predictors, e.g. 'y ~ 1' or 'y ~ x'")
        items = self.rhs(inside_group=False)
        if self.tok.kind != "end":
            if self.tok.text in ("|", "||"):
                raise self.fail(f"{self.tok.text!r} outside parentheses; write a group term as "
                                f"(1 + x {self.tok.text} g)")
            if self.tok.text in ("^", "%", "/", "=", ","):
                raise self.fail(f"the operator {self.tok.text!r} is not supported in formulas here; "
                                "use +, -, :, * and group terms (... | g)")
            raise self.fail(f"unexpected {self.tok.text!r}")
        return response, items

    def rhs(self, inside_group: bool) -> list[tuple[str, object, _Token]]:
        """Signed items: ("+" | "-", Term | list[Term] | GroupTerm, token)."""
        items: list[tuple[str, object, _Token]] = []
        sign = "+"
        if self.tok.kind == "op" and self.tok.text == "-":
            self.take()
            sign = "-"
        while True:
            start = self.tok
            if self.tok.kind == "op" and self.tok.text == "(":
                if inside_group:
                    raise self.fail("parentheses inside a group term are not supported")
                items.append((sign, self.group_term(), start))
            else:
                items.append((sign, self.product(), start))
            if self.tok.kind == "op" and self.tok.text in ("+", "-"):
                sign = self.take().text
                if self.tok.kind in ("end",) or (self.tok.kind == "op" and self.tok.text in ("+", "-", ")", "|", "||")):
                    found = "the end" if self.tok.kind == "end" else repr(self.tok.text)
                    raise self.fail(f"expected a term after {sign!r}, found {found}")
                continue
            return items

    def group_term(self) -> GroupTerm:
        open_tok = self.take()  # '('
        items = self.rhs(inside_group=True)
        if not (self.tok.kind == "op" and self.tok.text in ("|", "||")):
            if self.tok.kind == "op" and self.tok.text == ")":
                raise self.fail("parentheses are only for group terms such as (1 + x | g); this one has no '|'",
                                open_tok)
            found = "the end" if self.tok.kind == "end" else repr(self.tok.text)
            raise self.fail(f"expected '|' or '||' in the group term, found {found}")
        bar = self.take()
        if self.tok.kind != "name":
            found = "the end" if self.tok.kind == "end" else repr(self.tok.text)
            raise self.fail(f"expected the grouping column after {bar.text!r}, found {found}")
        factor_tok = self.take()
        if self.tok.kind == "op" and self.tok.text in (":", "/", "*", "+"):
            raise self.fail(
                f"one grouping column per group term: '{factor_tok.text}{self.tok.text}...' combines factors "
                f"(nested or crossed groups); make one column holding the combined label and group by it")
        self.expect(")", "')' to close the group term")
        terms = _collect(self.text, items, default_intercept=True, where="group term")
        if not terms:
            raise self.fail("the group term has no terms; write e.g. (1 | g) or (0 + x | g)", open_tok)
        return GroupTerm(tuple(terms), factor_tok.text, correlated=bar.text == "|")

    def product(self) -> list[Term] | Term:
        """A product: ``a``, ``a:b`` (one term) or ``a*b`` (a + b + a:b)."""
        parts: list[list[Term]] = [[self.atom()]]
        while self.tok.kind == "op" and self.tok.text in (":", "*"):
            op_tok = self.take()
            nxt = self.atom()
            if op_tok.text == ":":
                parts[-1] = [_times(self.text, t, nxt, op_tok) for t in parts[-1]]
            else:
                left = parts[-1]
                parts[-1] = left + [nxt] + [_times(self.text, t, nxt, op_tok) for t in left]
        terms = parts[0]
        return terms[0] if len(terms) == 1 else terms

    def atom(self) -> Term:
        tok = self.tok
        if tok.kind == "number":
            self.take()
            if tok.text in ("0", "1"):
                return _NUMBER_TERMS[tok.text]
            raise self.fail(f"the number {tok.text} cannot be a term; only 1 (intercept) and 0 (no intercept) can",
                            tok)
        if tok.kind == "name":
            self.take()
            if self.tok.kind == "op" and self.tok.text == "(":
                if tok.text not in FUNCTIONS:
                    raise self.fail(
                        f"function {tok.text!r} is not supported; use one of {', '.join(FUNCTIONS)} "
                        "(or compute the column before fitting)", tok)
                self.take()
                if self.tok.kind != "name":
                    found = "the end" if self.tok.kind == "end" else repr(self.tok.text)
                    raise self.fail(f"{tok.text}() takes one column name, found {found}")
                column = self.take().text
                self.expect(")", f"')' after {tok.text}({column}")
                return Term((Factor(column, tok.text),))
            return Term((Factor(tok.text),))
        if tok.kind == "end":
            raise self.fail("the formula ends where a term was expected")
        if tok.text in ("|", "||"):
            raise self.fail(f"{tok.text!r} outside parentheses; write a group term as (1 + x {tok.text} g)")
        if tok.text in ("^", "%", "/", "=", ","):
            raise self.fail(f"the operator {tok.text!r} is not supported in formulas here; "
                            "use +, -, :, * and group terms (... | g)")
        raise self.fail(f"expected a term, found {tok.text!r}")

    def factor(self) -> Factor:
        term = self.atom()
        if term.is_intercept or term is _ZERO or term.factors[0].categorical:
            raise self.fail("the response must be a column (or a function of one, e.g. log(y))", self.toks[0])
        if self.tok.kind == "op" and self.tok.text in (":", "*", "+"):
            raise self.fail("the response must be a single column (or a function of one)")
        return term.factors[0]


_INTERCEPT = Term(())
_ZERO = Term((Factor("0", "__zero__"),))  # marker for '0'
_NUMBER_TERMS = {"1": _INTERCEPT, "0": _ZERO}


def _times(text: str, left: Term, right: Term, tok: _Token) -> Term:
    if left.is_intercept or right.is_intercept or left is _ZERO or right is _ZERO:
        raise _error(text, tok.pos, "1 and 0 cannot be part of an interaction")
    factors = list(left.factors)
    for f in right.factors:
        if f in factors:
            raise _error(text, tok.pos, f"{f.name!r} appears twice in the interaction {left.name}:{right.name}")
        factors.append(f)
    return Term(tuple(factors))


def _flatten(items: list[tuple[str, object, _Token]]) -> Iterator[tuple[str, object, _Token]]:
    for sign, item, tok in items:
        if isinstance(item, list):
            for term in item:
                yield sign, term, tok
        else:
            yield sign, item, tok


def _collect(text: str, items: list[tuple[str, object, _Token]], default_intercept: bool, where: str) -> list[Term]:
    """Apply + and - in order; return the terms, the intercept first when kept."""
    intercept = default_intercept
    terms: dict[frozenset[Factor], Term] = {}
    for sign, item, tok in _flatten(items):
        if isinstance(item, GroupTerm):
            raise _error(text, tok.pos, f"a group term inside a {where}")
        assert isinstance(item, Term)
        if item is _ZERO:
            if sign == "-":
                raise _error(text, tok.pos, "'- 0' is not meaningful; write '+ 1' to keep the intercept")
            intercept = False
        elif item.is_intercept:
            intercept = sign == "+"
        elif sign == "+":
            if item.key() in terms:
                raise _error(text, tok.pos, f"the term {item.name!r} appears twice in the {where}")
            terms[item.key()] = item
        else:
            if item.key() not in terms:
                raise _error(text, tok.pos, f"'- {item.name}' removes a term that is not there")
            del terms[item.key()]
    return ([_INTERCEPT] if intercept else []) + list(terms.values())


def parse_formula(text: str) -> Formula:
    """Parse a formula such as ``"log_radon ~ floor + (1 + floor | county)"``.

    Parameters
    ----------
    text : str
        The formula. Common terms: columns, ``f(column)`` for ``f`` in
        :data:`FUNCTIONS` (``C(x)`` treats x as categorical), interactions ``a:b`` and
        ``a*b`` (= ``a + b + a:b``), ``1`` / ``0`` / ``- 1`` for the intercept. At most
        one group term, ``(terms | g)`` (correlated) or ``(terms || g)``
        (independent); several group terms are allowed when they share the grouping
        column and each has one term (``(1 | g) + (0 + x | g)`` is ``(1 + x || g)``).
        Column names with spaces go in backticks.

    Returns
    -------
    Formula

    Raises
    ------
    FormulaError
        Naming the problem and its position, e.g. two grouping factors, an unknown
        function, a misplaced operator.
    """
    if not isinstance(text, str):
        raise FormulaError(f"formula={text!r} must be a string such as 'y ~ x + (1 | g)'")
    parser = _Parser(text)
    response, items = parser.formula()
    groups = [(item, tok) for sign, item, tok in items if isinstance(item, GroupTerm)]
    for sign, item, tok in items:
        if isinstance(item, GroupTerm) and sign == "-":
            raise _error(text, tok.pos, "a group term cannot be removed with '-'")
    common = _collect(text, [(s, i, t) for s, i, t in items if not isinstance(i, GroupTerm)],
                      default_intercept=True, where="formula")
    group = _merge_groups(text, groups)
    for term in common + list(group.terms if group else ()):
        for f in term.factors:
            if f.column == response.column:
                raise FormulaError(f"formula {text!r}: the response {response.column!r} is also a predictor; "
                                   "a column cannot explain itself")
            if group is not None and f.column == group.factor:
                raise FormulaError(f"formula {text!r}: the grouping column {group.factor!r} is also a predictor; "
                                   "group-level effects of it are already the group effects")
    if group is not None and group.factor == response.column:
        raise FormulaError(f"formula {text!r}: the response {response.column!r} cannot be the grouping column")
    return Formula(text, response, tuple(common), group)


def _merge_groups(text: str, groups: list[tuple[GroupTerm, _Token]]) -> GroupTerm | None:
    if not groups:
        return None
    factors = list(dict.fromkeys(g.factor for g, _ in groups))
    if len(factors) > 1:
        second = next(tok for g, tok in groups if g.factor == factors[1])
        raise _error(text, second.pos,
                     f"two grouping factors ({', '.join(repr(f) for f in factors)}): hierlin_stan fits models "
                     "with one grouping factor; keep one, or combine them into one column")
    if len(groups) == 1:
        return groups[0][0]
    if any(len(g.terms) != 1 for g, _ in groups):
        second = groups[1][1]
        raise _error(text, second.pos,
                     f"several group terms for {factors[0]!r}: write them as one, e.g. (1 + x | {factors[0]}) "
                     f"for correlated effects or (1 + x || {factors[0]}) for independent ones")
    terms: list[Term] = []
    for g, tok in groups:
        if any(t.key() == g.terms[0].key() for t in terms):
            raise _error(text, tok.pos, f"the group term {g.terms[0].name!r} appears twice")
        terms.append(g.terms[0])
    terms.sort(key=lambda t: not t.is_intercept)
    return GroupTerm(tuple(terms), factors[0], correlated=False)
