"""Formulas in the lme4/brms/bambi syntax: what they mean, and one clear error per mistake."""

from __future__ import annotations

import pytest

from hierlin_stan.model.formula import FormulaError, parse_formula


@pytest.mark.parametrize(
    "text, canonical, columns",
    [
        ("y ~ x1 + x2 + (1 + x1 | g)", "y ~ 1 + x1 + x2 + (1 + x1 | g)", ["y", "x1", "x2", "g"]),
        ("y ~ x + (1 + x || g)", "y ~ 1 + x + (1 + x || g)", ["y", "x", "g"]),
        ("y ~ (1 | g)", "y ~ 1 + (1 | g)", ["y", "g"]),
        ("y ~ 1 + x + (0 + x | g)", "y ~ 1 + x + (0 + x | g)", ["y", "x", "g"]),
        ("y ~ 0 + x", "y ~ 0 + x", ["y", "x"]),
        ("y ~ x - 1", "y ~ 0 + x", ["y", "x"]),
        ("y ~ x + (x | g)", "y ~ 1 + x + (1 + x | g)", ["y", "x", "g"]),  # lme4: (x | g) has an intercept
        ("y ~ x + (x - 1 | g)", "y ~ 1 + x + (0 + x | g)", ["y", "x", "g"]),
        ("log(y) ~ C(floor) + a*b", "log(y) ~ 1 + C(floor) + a + b + a:b", ["y", "floor", "a", "b"]),
        ("y ~ a:b + b:a2", "y ~ 1 + a:b + b:a2", ["y", "a", "b", "a2"]),
        ("y ~ x + (1 | g) + (0 + x | g)", "y ~ 1 + x + (1 + x || g)", ["y", "x", "g"]),
        ("y ~ `my col` + (1 | g)", "y ~ 1 + my col + (1 | g)", ["y", "my col", "g"]),
        ("y~x+(1|g)", "y ~ 1 + x + (1 | g)", ["y", "x", "g"]),
    ],
)
def test_formulas_parse_to_their_meaning(text, canonical, columns):
    f = parse_formula(text)
    assert f.canonical == canonical
    assert f.columns == columns
    assert f.text == text


def test_group_term_details():
    f = parse_formula("y ~ x + (1 + x | county)")
    assert f.group.factor == "county" and f.group.correlated
    assert [t.name for t in f.group.terms] == ["Intercept", "x"]
    g = parse_formula("y ~ x + (1 + x || county)").group
    assert not g.correlated
    assert parse_formula("y ~ x").group is None


@pytest.mark.parametrize(
    "text, message, position",
    [
        ("y ~ x + (1|g) + (1|h)", "two grouping factors ('g', 'h')", 17),
        ("y ~ x + (1 | g/h)", "one grouping column per group term", 15),
        ("y ~ x + (1 | g:h)", "one grouping column per group term", 15),
        ("y ~ x +", "expected a term after '+', found the end", 8),
        ("~ x", "the response is missing", 1),
        ("y x", "expected '~' after the response", 3),
        ("", "the formula is empty", 1),
        ("y ~ poly(x, 2)", "function 'poly' is not supported", 5),
        ("y ~ 2 + x", "the number 2 cannot be a term", 5),
        ("y ~ x | g", "'|' outside parentheses", 7),
        ("y ~ (x + z)", "parentheses are only for group terms", 5),
        ("y ~ x^2", "the operator '^' is not supported", 6),
        ("y ~ x + x", "the term 'x' appears twice", 9),
        ("0 ~ x", "the response must be a column", 1),
        ("y ~ x + (1 + x|g) + (0 + z|g)", "several group terms for 'g'", 21),
        ("y ~ $x", "unexpected character '$'", 5),
        ("y ~ x + (1 + | g)", "expected a term after '+'", 14),
        ("y ~ x + (1 | )", "expected the grouping column", 14),
        ("y ~ x + (1 | g", "expected ')' to close the group term", 15),
        ("y ~ x - z", "'- z' removes a term that is not there", 9),
        ("y ~ 1:x", "1 and 0 cannot be part of an interaction", 6),
    ],
)
def test_mistakes_name_the_problem_and_where(text, message, position):
    with pytest.raises(FormulaError) as info:
        parse_formula(text)
    text_of_error = str(info.value)
    assert message in text_of_error
    assert f"at position {position}" in text_of_error
    # the caret sits under the position
    caret_line = text_of_error.splitlines()[-1]
    assert caret_line.index("^") - 4 == position - 1


@pytest.mark.parametrize(
    "text, message",
    [
        ("y ~ x + y", "the response 'y' is also a predictor"),
        ("y ~ g + (1 | g)", "the grouping column 'g' is also a predictor"),
        ("g ~ x + (1 | g)", "cannot be the grouping column"),
    ],
)
def test_semantic_mistakes(text, message):
    with pytest.raises(FormulaError, match=message):
        parse_formula(text)


def test_not_a_string():
    with pytest.raises(FormulaError, match="must be a string"):
        parse_formula(3)  # type: ignore[arg-type]
