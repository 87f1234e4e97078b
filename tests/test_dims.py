"""Tests for the symbolic dim algebra (`lazyshape/_dims.py`)."""

from __future__ import annotations

import copy
import operator
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lazyshape._dims import (
    Dim,
    Expr,
    NotConcreteError,
    Sym,
    SymbolicComparisonError,
    as_dim,
    bind,
    bind_shape,
    definitely_equal,
    definitely_not_equal,
    dim_max,
    dim_min,
    eq,
    format_dim,
    format_shape,
    free_symbols,
    ge,
    gt,
    is_symbolic,
    le,
    lt,
    ne,
    parse,
    prod,
    resolve,
    unknown,
)

A, B, H, W = Sym("A"), Sym("B"), Sym("H"), Sym("W")


def conv(d: Dim, k: int, s: int = 1, p: int = 0, dil: int = 1) -> Dim:
    """`(d + 2p - dil*(k-1) - 1) // s + 1`."""
    return (d + 2 * p - dil * (k - 1) - 1) // s + 1


# ---------------------------------------------------------------------------------
# Example table: built expression -> expected text, and (optionally) an expression
# it must equal. Every simplification the module promises is listed here.
# ---------------------------------------------------------------------------------
EXAMPLES: list[tuple[str, Callable[[], Dim], str, Callable[[], Dim] | None]] = [
    ("mul by one", lambda: B * 1, "B", lambda: B),
    ("add zero", lambda: B + 0, "B", lambda: B),
    ("const fold in floordiv", lambda: (H + 2 - 3) // 1 + 1, "H", lambda: H),
    ("floordiv by one", lambda: (H * W + 3) // 1, "H*W + 3", None),
    ("mod by one", lambda: (H * W + 3) % 1, "0", None),
    ("split exact", lambda: (2 * H + 1) // 2, "H", lambda: H),
    ("split all divisible", lambda: (4 * H + 6) // 2, "2*H + 3", None),
    ("split partial", lambda: (4 * H + W) // 2, "2*H + W//2", None),
    ("gcd normalisation", lambda: (2 * H + 3) // 4, "(H + 1)//2", lambda: (H + 1) // 2),
    ("mod split", lambda: (4 * H + W + 1) % 2, "(W + 1) % 2", lambda: (W + 1) % 2),
    ("mod split const", lambda: (4 * H + 7) % 2, "1", None),
    ("mod gcd", lambda: (2 * H + 1) % 4, "2*(H % 2) + 1", None),
    ("nested floordiv", lambda: (H // 2) // 3, "H//6", lambda: H // 6),
    ("nested floordiv with const", lambda: (H // 2 + 1) // 2, "(H + 2)//4", None),
    ("nested mod", lambda: (H % 6) % 3, "H % 3", lambda: H % 3),
    ("two stride-2 convs", lambda: ((H - 1) // 2 + 1 - 1) // 2 + 1, "(H - 1)//4 + 1", None),
    ("conv helper twice", lambda: conv(conv(H, 3, 2, 1), 3, 2, 1), "(H - 1)//4 + 1", None),
    ("same conv", lambda: conv(H, 3, 1, 1), "H", lambda: H),
    ("pool 2x2", lambda: conv(H, 2, 2), "H//2", lambda: H // 2),
    ("p // p", lambda: (H + W) // (H + W), "1", None),
    ("p % p", lambda: (H + W) % (H + W), "0", None),
    ("k*p // p", lambda: (3 * H * W) // (H * W), "3", None),
    ("k*p % p", lambda: (3 * H + 3) % (H + 1), "0", None),
    ("small over larger", lambda: H // (H + 1), "0", None),
    ("small mod larger", lambda: H % (H + 1), "H", lambda: H),
    ("symbolic divisor kept", lambda: H // B, "H//B", None),
    ("symbolic mod kept", lambda: H % (B + 1), "H % (B + 1)", None),
    ("negative divisor", lambda: H // -2, "(-H)//2", lambda: (-H) // 2),
    ("max decided", lambda: dim_max(H, H + 1), "H + 1", None),
    ("min decided", lambda: dim_min(H, H + 1), "H", None),
    ("max with 1", lambda: dim_max(H, 1), "H", None),
    ("min with 0", lambda: dim_min(H, 0), "0", None),
    ("max of self", lambda: dim_max(H * W, H * W), "H*W", None),
    ("max undecided sorted", lambda: dim_max(B, A), "max(A, B)", lambda: dim_max(A, B)),
    ("min undecided", lambda: dim_min(W + 1, H), "min(H, W + 1)", None),
    ("floordiv by bounds", lambda: (H % 3) // 3, "0", None),
    ("mod by bounds", lambda: (H % 3 + 3) % 3, "H % 3", None),
    ("product order", lambda: W * 16 * H, "16*H*W", None),
    ("degree order", lambda: 3 + W + H * H, "H*H + W + 3", None),
    ("subtraction", lambda: H - 1, "H - 1", None),
    ("leading minus", lambda: 3 - B, "-B + 3", None),
    ("negated floordiv", lambda: -(H // 2), "-(H//2)", None),
    ("scaled floordiv", lambda: 2 * (H // 3), "2*(H//3)", None),
    ("difference with floordiv", lambda: H - H // 2, "H - H//2", None),
    ("x - x", lambda: H * W - W * H, "0", None),
    ("cancel to symbol", lambda: (H + W) - W, "H", lambda: H),
    ("unknown prints ?", lambda: Sym(None) + 1, "? + 1", None),
]


@pytest.mark.parametrize(
    ("build", "text", "same"), [e[1:] for e in EXAMPLES], ids=[e[0] for e in EXAMPLES]
)
def test_examples(build: Callable[[], Dim], text: str, same: Callable[[], Dim] | None) -> None:
    d = build()
    assert str(d) == text
    assert format_dim(d) == text
    if same is not None:
        assert d == same()
        assert hash(d) == hash(same())


@pytest.mark.parametrize(
    ("value", "cls"),
    [(B * 1, Sym), ((H + 2 - 3) // 1 + 1, Sym), (B * 2, Expr), (B - B + 4, int), (H // H, int)],
)
def test_normalised_result_types(value: Dim, cls: type) -> None:
    assert type(value) is cls


def test_expr_never_equals_int() -> None:
    assert (B - B + 4) == 4
    assert B != 1
    assert not (B == 1)  # noqa: SIM201 - exercising __eq__ itself
    assert (B + 0) == B
    assert W != B


def test_repr_is_str_and_shape_prints() -> None:
    assert repr((H - 1) // 4 + 1) == "(H - 1)//4 + 1"
    assert repr((B, 16)) == "(B, 16)"


def test_sym_and_unknown() -> None:
    u, v = unknown(), Sym(None)
    assert u != v
    assert str(u) == "?" and str(v) == "?"
    assert u.name.startswith("?") and u.name != v.name
    assert Sym("B").name == "B"
    assert isinstance(B + 0, Sym)
    assert (u - u) == 0
    assert free_symbols(u + B) == frozenset({u.name, "B"})


def test_sym_rejects_bad_names() -> None:
    with pytest.raises(ValueError, match="must be a Python identifier, got 'H W'"):
        Sym("H W")


def test_expr_not_constructible_and_immutable() -> None:
    with pytest.raises(TypeError, match="cannot be constructed directly"):
        Expr()
    e = H + 1
    assert isinstance(e, Expr)
    with pytest.raises(AttributeError, match="immutable"):
        e._terms = {}


def test_copy_and_pickle_roundtrip() -> None:
    e = dim_max((H - 1) // 4 + 1, W * B)
    assert copy.copy(e) is e and copy.deepcopy(e) is e
    back = pickle.loads(pickle.dumps(e))
    assert back == e and hash(back) == hash(e) and str(back) == str(e)
    assert type(pickle.loads(pickle.dumps(B))) is Sym


def test_numpy_integers_mix() -> None:
    assert B * np.int64(64) == B * 64  # type: ignore[operator]
    assert as_dim(np.int32(7)) == 7 and type(as_dim(np.int32(7))) is int
    assert bind(B * 2, {"B": np.int64(3)}) == 6  # type: ignore[dict-item]


def test_unsupported_operand_is_type_error() -> None:
    with pytest.raises(TypeError):
        B + 1.5  # type: ignore[operator]
    with pytest.raises(TypeError):
        B * True


@pytest.mark.parametrize(
    ("x", "expected"),
    [(3, 3), (0, 0), ("B", B), ("H//2", H // 2), ("2*B", 2 * B), (" 7 ", 7), (H + 1, H + 1)],
)
def test_as_dim(x: object, expected: Dim) -> None:
    assert as_dim(x) == expected


def test_as_dim_none_is_fresh_unknown() -> None:
    a, b = as_dim(None), as_dim(None)
    assert isinstance(a, Sym) and a != b and str(a) == "?"


@pytest.mark.parametrize(
    ("x", "exc", "msg"),
    [
        (-1, ValueError, r"dims must be non-negative, got -1"),
        ("-2", ValueError, r"dims must be non-negative, got '-2'"),
        (1.5, TypeError, r"cannot interpret 1\.5 \(type float\) as a dim"),
        (True, TypeError, r"cannot interpret True \(type bool\) as a dim"),
        ([3], TypeError, r"cannot interpret \[3\] \(type list\)"),
        ("H ** 2", ValueError, r"unsupported operator \*\*"),
    ],
)
def test_as_dim_errors(x: object, exc: type[Exception], msg: str) -> None:
    with pytest.raises(exc, match=msg):
        as_dim(x)


@pytest.mark.parametrize(
    ("text", "msg"),
    [
        ("H ** 2", r"unsupported operator \*\* in dim expression 'H \*\* 2'"),
        ("foo(1)", r"unsupported function 'foo' in dim expression 'foo\(1\)'; only max"),
        ("H / 2", r"unsupported operator / \(use // for integer division\)"),
        ("H +", r"cannot parse dim expression 'H \+'"),
        ("H.x", r"unsupported syntax 'H\.x'"),
        ("1.5 * H", r"unsupported syntax '1\.5'"),
        ("max(A)", r"max takes exactly two positional arguments"),
        ("H // 0", r"division by zero in dim expression"),
        ("True", r"unsupported syntax 'True'"),
    ],
)
def test_parse_errors(text: str, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        parse(text)


def test_parse_examples() -> None:
    assert parse("(H - 1)//4 + 1") == (H - 1) // 4 + 1
    assert parse("max(A, B) + min(H, 3)") == dim_max(A, B) + dim_min(H, 3)
    assert parse("-B + +3") == 3 - B
    assert parse("H % (B + 1)") == H % (B + 1)
    assert parse("12") == 12
    assert type(parse("H")) is Sym


def test_ordering_operators() -> None:
    assert H + 1 > H
    assert H >= 1
    assert 0 < H  # noqa: SIM300 - exercising the reflected operator
    assert not (H < 1)
    assert H // 2 >= 0
    assert dim_max(A, B) >= A


@pytest.mark.parametrize(
    ("pred", "expected"),
    [
        # Decided only by relating an opaque term to its operands, not by intervals.
        (lambda: ge(H - H // 2, 1), True),
        (lambda: ge(H - H % 2, 0), True),
        (lambda: ge(dim_max(A, B), A), True),
        (lambda: le(dim_min(A, B), B), True),
        (lambda: lt(2 * (H // 2), H + 1), True),
        (lambda: ge(2 * (H // 2), H - 1), True),
        (lambda: gt(H // 2, H), False),
        (lambda: ge(H // 2, H // 3), True),
        (lambda: ge(H // 2, W), None),
        (lambda: ge(H - H // 2, 2), None),
    ],
)
def test_refined_bounds(pred: Callable[[], bool | None], expected: bool | None) -> None:
    assert pred() is expected


def test_refined_bounds_simplify_max() -> None:
    assert dim_max(H, H // 2) == H
    assert dim_min(H % 4, H) == H % 4


def test_undecidable_ordering_raises() -> None:
    with pytest.raises(SymbolicComparisonError, match=r"cannot decide A < B symbolically.*resolve"):
        _ = Sym("A") < Sym("B")
    with pytest.raises(SymbolicComparisonError, match=r"definitely_"):
        _ = H >= 2
    assert issubclass(SymbolicComparisonError, ValueError)


def test_not_concrete() -> None:
    with pytest.raises(NotConcreteError, match="dim A is symbolic"):
        int(Sym("A"))
    with pytest.raises(NotConcreteError, match=r"dim H \+ 1 is symbolic"):
        operator.index(H + 1)
    with pytest.raises(NotConcreteError):
        np.zeros((B, 2))
    assert issubclass(NotConcreteError, ValueError)


def test_three_valued_helpers() -> None:
    assert eq(3, 3) is True and eq(3, 4) is False
    assert eq(H + W, W + H) is True
    assert eq(H + 1, H) is False
    assert eq(H, W) is None
    assert ne(H, W) is None and ne(H + 1, H) is True and ne(H, H) is False
    assert lt(H, H + 1) is True and lt(H + 1, H) is False and lt(H, W) is None
    assert le(H, H) is True and le(H + 1, H) is False and le(H, W) is None
    assert gt(H + 1, H) is True and gt(1, H) is False and gt(H, 2) is None
    assert ge(H, 1) is True and ge(0, H) is False and ge(H, 2) is None
    assert definitely_equal(H * 2, H + H) and not definitely_equal(H, W)
    assert definitely_not_equal(H, H + 1) and not definitely_not_equal(H, W)
    assert resolve(None, default=True) is True and resolve(False, default=True) is False
    assert resolve(True, default=False) is True


def test_bind() -> None:
    e = (H - 1) // 4 + 1
    assert bind(e, {"H": 9}) == 3 and type(bind(e, {"H": 9})) is int
    assert bind(H * W + 1, {"H": 2}) == 2 * W + 1
    assert bind(H, {"H": W + 1}) == W + 1
    assert bind(5, {}) == 5
    assert bind(dim_max(A, B) % W, {"A": 3, "B": 7, "W": 4}) == 3
    assert bind_shape((B, 16, H // 2), {"B": 4, "H": 9}) == (4, 16, 4)
    with pytest.raises(ZeroDivisionError):
        bind(H // W, {"H": 3, "W": 0})


def test_free_symbols_and_is_symbolic() -> None:
    assert free_symbols(3) == frozenset()
    assert free_symbols(dim_max(A, H // B) + W) == frozenset({"A", "B", "H", "W"})
    assert is_symbolic(H) and is_symbolic(H * 2) and not is_symbolic(4)
    assert not is_symbolic(H - H)


def test_format_shape_and_prod() -> None:
    assert format_shape((B, 16)) == "(B, 16)"
    assert format_shape((4,)) == "(4,)"
    assert format_shape(()) == "()"
    assert format_shape((H // 2, dim_max(A, B))) == "(H//2, max(A, B))"
    assert prod([]) == 1
    assert prod([2, 3, 4]) == 24 and type(prod([2, 3, 4])) is int
    assert prod([B, 16, H]) == 16 * B * H
    dims: list[Dim] = [B, 0]
    assert prod(iter(dims)) == 0


def test_zero_division() -> None:
    with pytest.raises(ZeroDivisionError):
        H // 0
    with pytest.raises(ZeroDivisionError):
        H % 0


# ---------------------------------------------------------------------------------
# Properties: random expression trees evaluated symbolically-then-bound and on ints.
# ---------------------------------------------------------------------------------
NAMES = ("A", "B", "C")
Tree = tuple[Any, ...]

leaves = st.one_of(
    st.sampled_from(NAMES).map(lambda n: ("sym", n)),
    st.integers(-6, 6).map(lambda k: ("const", k)),
)
# Divisors that are positive for every positive binding.
divisors = st.one_of(
    st.integers(1, 7).map(lambda k: ("const", k)),
    st.integers(-7, -1).map(lambda k: ("const", k)),
    st.tuples(st.sampled_from(NAMES), st.integers(0, 3)).map(
        lambda nk: ("add", ("sym", nk[0]), ("const", nk[1]))
    ),
    st.tuples(st.sampled_from(NAMES), st.sampled_from(NAMES)).map(
        lambda ab: ("mul", ("sym", ab[0]), ("sym", ab[1]))
    ),
)


def _extend(children: st.SearchStrategy[Tree]) -> st.SearchStrategy[Tree]:
    binary = st.tuples(st.sampled_from(["add", "sub", "mul", "max", "min"]), children, children)
    division = st.tuples(st.sampled_from(["floordiv", "mod"]), children, divisors)
    neg = st.tuples(st.just("neg"), children)
    return st.one_of(binary, division, neg)


trees = st.recursive(leaves, _extend, max_leaves=10)
envs = st.fixed_dictionaries({n: st.integers(1, 50) for n in NAMES})

SYMS = {n: Sym(n) for n in NAMES}


def build(t: Tree, env: dict[str, Any], mx: Callable[..., Any], mn: Callable[..., Any]) -> Any:
    op = t[0]
    if op == "sym":
        return env[t[1]]
    if op == "const":
        return t[1]
    if op == "neg":
        return -build(t[1], env, mx, mn)
    a, b = build(t[1], env, mx, mn), build(t[2], env, mx, mn)
    if op == "add":
        return a + b
    if op == "sub":
        return a - b
    if op == "mul":
        return a * b
    if op == "floordiv":
        return a // b
    if op == "mod":
        return a % b
    return mx(a, b) if op == "max" else mn(a, b)


def sym_of(t: Tree) -> Dim:
    return build(t, SYMS, dim_max, dim_min)  # type: ignore[no-any-return]


def int_of(t: Tree, env: dict[str, int]) -> int:
    return build(t, env, max, min)  # type: ignore[no-any-return]


@given(trees, envs)
def test_bind_matches_integer_evaluation(t: Tree, env: dict[str, int]) -> None:
    e = sym_of(t)
    assert bind(e, env) == int_of(t, env)
    assert type(bind(e, env)) is int


@given(trees, trees, trees)
def test_ring_laws(tx: Tree, ty: Tree, tz: Tree) -> None:
    x, y, z = sym_of(tx), sym_of(ty), sym_of(tz)
    assert x + y == y + x
    assert x * y == y * x
    assert (x + y) + z == x + (y + z)
    assert (x * y) * z == x * (y * z)
    assert x * (y + z) == x * y + x * z
    assert x - x == 0
    assert x + 0 == x and x * 1 == x and x * 0 == 0
    assert operator.neg(-x) == x
    assert hash((x + y) * z) == hash(z * y + z * x)


@given(trees)
def test_parse_str_roundtrip(t: Tree) -> None:
    e = sym_of(t)
    back = parse(str(e))
    assert back == e
    assert hash(back) == hash(e)
    assert str(back) == str(e)


@given(trees, trees, st.lists(envs, min_size=1, max_size=5))
def test_three_valued_comparisons_are_sound(
    ta: Tree, tb: Tree, bindings: list[dict[str, int]]
) -> None:
    a, b = sym_of(ta), sym_of(tb)
    checks: list[tuple[Callable[[Dim, Dim], bool | None], Callable[[int, int], bool]]] = [
        (eq, operator.eq),
        (ne, operator.ne),
        (lt, operator.lt),
        (le, operator.le),
        (gt, operator.gt),
        (ge, operator.ge),
    ]
    for helper, concrete in checks:
        verdict = helper(a, b)
        if verdict is None:
            continue
        for env in bindings:
            assert concrete(int_of(ta, env), int_of(tb, env)) == verdict


@given(trees, trees, envs)
def test_max_min_and_self_comparisons(ta: Tree, tb: Tree, env: dict[str, int]) -> None:
    a, b = sym_of(ta), sym_of(tb)
    assert dim_max(a, a) == a and dim_min(a, a) == a
    assert dim_max(a, b) == dim_max(b, a)
    assert bind(dim_max(a, b), env) == max(int_of(ta, env), int_of(tb, env))
    assert bind(dim_min(a, b), env) == min(int_of(ta, env), int_of(tb, env))
    assert eq(a, a) is True and le(a, a) is True and lt(a, a) is False


def test_max_min_of_provably_equal_dims_do_not_depend_on_the_order():
    e = -((-1) // Sym("A"))  # always 1, though not rewritten to 1
    assert dim_max(1, e) == dim_max(e, 1) == 1
    assert dim_min(1, e) == dim_min(e, 1) == 1


@given(trees, trees)
def test_hash_consistent_with_equality(ta: Tree, tb: Tree) -> None:
    a, b = sym_of(ta), sym_of(tb)
    if a == b:
        assert hash(a) == hash(b)
    assert hash(a + b) == hash(b + a)
    assert {a: 1}[parse(str(a))] == 1


@given(trees, st.integers(1, 8), envs)
def test_division_identity(t: Tree, c: int, env: dict[str, int]) -> None:
    e = sym_of(t)
    assert bind(c * (e // c) + e % c - e, env) == 0
    assert (c * e) // c == e
    assert (c * e) % c == 0


nonzero = st.integers(-6, 6).filter(bool)


@given(trees, nonzero, nonzero, st.integers(-9, 9), envs)
def test_nested_division(t: Tree, c1: int, c2: int, k: int, env: dict[str, int]) -> None:
    e, v = sym_of(t), int_of(t, env)
    assert bind((e // c1 + k) // c2, env) == (v // c1 + k) // c2
    assert bind((e % c1 + k) % c2, env) == (v % c1 + k) % c2
    assert bind((e // c1 + k) % c2, env) == (v // c1 + k) % c2
    assert bind((e % c1 + k) // c2, env) == (v % c1 + k) // c2


@given(trees, trees, st.integers(1, 6), st.lists(envs, min_size=1, max_size=5))
def test_comparisons_sound_on_related_dims(
    ta: Tree, tb: Tree, c: int, bindings: list[dict[str, int]]
) -> None:
    # Pairs whose bounds are tightened by relating an opaque term to its operands.
    a, b = sym_of(ta), sym_of(tb)
    pairs = [
        (dim_max(a, b), a),
        (dim_min(a, b), b),
        (dim_max(a, b) + dim_min(a, b), a + b),
        (a // c, a),
        (c * (a // c), a),
        (a % c, a),
        (a - a // c, b),
        (a - a % c, c * (a // c)),
    ]
    helpers: list[Callable[[Dim, Dim], bool | None]] = [eq, ne, lt, le, gt, ge]
    concrete: list[Callable[[int, int], bool]] = [
        operator.eq,
        operator.ne,
        operator.lt,
        operator.le,
        operator.gt,
        operator.ge,
    ]
    for x, y in pairs:
        for helper, op in zip(helpers, concrete, strict=True):
            verdict = helper(x, y)
            if verdict is None:
                continue
            for env in bindings:
                bx, by = bind(x, env), bind(y, env)
                assert isinstance(bx, int) and isinstance(by, int)
                assert op(bx, by) == verdict, (helper.__name__, x, y, env)


# ---------------------------------------------------------------------------------
# Shortcuts of the comparisons and the memos must not change any answer.
# ---------------------------------------------------------------------------------
@given(trees, st.integers(-9, 9))
def test_refined_bounds_shift_and_negate_exactly(t: Tree, c: int) -> None:
    # `_diff_bounds` compares an expression with an int by shifting / negating the
    # expression's bounds instead of bounding the difference: exact, never looser.
    from lazyshape._dims import _REFINE_DEPTH, _refined_bounds

    e = sym_of(t)
    lo, hi = _refined_bounds(e, _REFINE_DEPTH)
    assert _refined_bounds(e + c, _REFINE_DEPTH) == (lo + c, hi + c)
    assert _refined_bounds(c - e, _REFINE_DEPTH) == (c - hi, c - lo)


@given(trees, trees, st.integers(-9, 9))
def test_comparison_shortcuts_agree_with_the_difference(ta: Tree, tb: Tree, c: int) -> None:
    from lazyshape._dims import _dim_bounds, _sub

    a, b = sym_of(ta), sym_of(tb)
    for x, y in ((a, c), (c, a), (a, b), (a, a)):
        d = _sub(x, y)
        lo, hi = _dim_bounds(d)
        want_eq = (d == 0) if type(d) is int else (False if lo > 0 or hi < 0 else None)
        assert eq(x, y) is want_eq
        assert lt(x, y) is (True if hi < 0 else False if lo >= 0 else None)
        assert le(x, y) is (True if hi <= 0 else False if lo > 0 else None)


@given(trees, trees, st.integers(1, 5))
def test_memoised_results_equal_fresh_ones(ta: Tree, tb: Tree, c: int) -> None:
    # The operators return memoised results: the same values (and texts) as the
    # plain functions computed from scratch, with the memos cold or warm.
    from lazyshape import _dims

    a, b = sym_of(ta), sym_of(tb)
    fresh = [
        _dims._add(a, b),
        _dims._sub(a, b),
        _dims._mul(a, b),
        _dims._neg(a),
        _dims._floordiv(a, c),
        _dims._mod(a, c),
        _dims._floordiv(a, A + c),
        _dims._mod(b, A + c),
        _dims._max_min("max", a, b),
        _dims._max_min("min", a, b),
    ]
    for cold in (True, False):
        if cold:
            _dims._clear_memos()
        got = [
            a + b,
            a - b,
            a * b,
            -a,
            a // c,
            a % c,
            a // (A + c),
            b % (A + c),
            dim_max(a, b),
            dim_min(a, b),
        ]
        for x, y in zip(got, fresh, strict=True):
            assert type(x) is type(y) and x == y and str(x) == str(y)


def test_named_symbols_are_interned() -> None:
    # (interning is an optimisation, not a promise: a memo drops its oldest entries)
    h = Sym("H")
    assert Sym("H") is h and as_dim("H") is h
    assert Sym(None) is not Sym(None)
    assert (h - 1) // 2 is (h - 1) // 2  # equal operations share their result


def test_memo_is_bounded_and_skips_anonymous_dims() -> None:
    from lazyshape import _dims

    _dims._clear_memos()
    u = unknown()
    assert str((u - 1) // 2 + 1) == "(? - 1)//2 + 1"
    assert not _dims._MEMO  # a fresh anonymous dim's operations never come back
    for i in range(_dims._MEMO_SIZE + 10):
        _ = H + i
    assert 0 < len(_dims._MEMO) <= _dims._MEMO_SIZE
    assert H + 3 == H + 3 and str(H + 3) == "H + 3"


def test_memo_is_thread_safe() -> None:
    # Many threads computing the same chains (with the memo emptied now and then,
    # and full of other entries) all get the single-threaded answers.
    import sys
    import threading

    from lazyshape import _dims

    names = [f"S{i}" for i in range(6)]

    def chain(name: str) -> tuple[str, ...]:
        d = h = Sym(name)
        out = []
        for s in (2, 2, 1, 2, 3):
            d = conv(d, 3, s, 1)
            out += [str(d), str(dim_max(d, h // 3)), str(d % 5), str(eq(d, h))]
        return tuple(out)

    _dims._clear_memos()
    expected = {n: chain(n) for n in names}
    errors: list[str] = []
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        barrier.wait()
        for rep in range(150):
            if rep % 40 == i:
                _dims._clear_memos()
            if rep % 7 == 0:
                for k in range(50):
                    _ = Sym(f"T{i}") * k
            n = names[(i + rep) % len(names)]
            if chain(n) != expected[n]:
                errors.append(n)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors


def test_bind_rounding_up_flips_every_division():
    from lazyshape._dims import bind_rounding_up

    L = Sym("L")
    floor = (L - 3) // 2 + 1
    assert bind(floor, {"L": 10}) == 4 and bind_rounding_up(floor, {"L": 10}) == 5
    assert bind_rounding_up(floor, {"L": 9}) == 4  # exact: nothing to round
    ceil = -((-L) // 4)
    assert bind(ceil, {"L": 10}) == 3 and bind_rounding_up(ceil, {"L": 10}) == 2
    nested = (L // 2) // 2  # each division flipped: ceil(ceil(5 / 2) / 2)
    assert bind(nested, {"L": 5}) == 1 and bind_rounding_up(nested, {"L": 5}) == 2
    assert bind_rounding_up(L * 2 + 1, {"L": 3}) == 7  # no division: bind


def test_weighted_sum_and_memoised_sum_equal_plain_arithmetic() -> None:
    from lazyshape._dims import dim_sum, weighted_sum

    b, h = Sym("B"), Sym("H")
    terms = [(b * h, 3), (b, 2), (7, 4), (h // 2, 0), (-(b * h), 1)]
    expected = 0
    for d, k in terms:
        expected = expected + d * k
    assert weighted_sum(terms) == expected == 2 * b * h + 2 * b + 28
    assert weighted_sum([(b, 1), (-b, 1)]) == 0  # cancelling terms give a plain int
    # the memoised sum hands out a value equal to the sum built step by step,
    # asked twice (the second time from the memo) and in another order
    dims = [b * h, b, b * h, 5, h // 2]
    first, again, reordered = dim_sum(dims), dim_sum(dims), dim_sum(dims[::-1])
    step: Any = 0
    for d in dims:
        step = step + d
    assert first == again == reordered == step
    assert dim_sum([np.int64(3), b]) == b + 3


def test_shifted_floordiv_is_the_plain_formula_for_every_kind_of_dim() -> None:
    from lazyshape._dims import shifted_floordiv

    h = Sym("H")
    assert shifted_floordiv(h, -1, 2, 1) == (h - 1) // 2 + 1
    assert shifted_floordiv(h, -1, 2, 1) is shifted_floordiv(h, -1, 2, 1)  # one memo entry
    assert shifted_floordiv(9, -1, 2, 1) == 5
    assert shifted_floordiv(np.int64(9), -1, 2, 1) == 5

    class Foreign:  # a framework's own symbolic dim, met by a rule at run time
        def __init__(self, text: str) -> None:
            self.text = text

        def __add__(self, k: int) -> Foreign:
            return Foreign(f"({self.text} + {k})")

        def __floordiv__(self, k: int) -> Foreign:
            return Foreign(f"{self.text} // {k}")

    assert shifted_floordiv(Foreign("h"), -1, 2, 1).text == "((h + -1) // 2 + 1)"
