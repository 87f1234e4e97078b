"""Symbolic dim algebra: a dim is a plain ``int`` or a symbolic ``Expr``.

An ``Expr`` is kept in a canonical form, modelled on JAX's ``shape_poly``: a
polynomial with integer coefficients over *atoms*. An atom is either a named
symbol (``B``, ``H``) or an opaque operation ``p // q``, ``p % q``,
``max(p, q)``, ``min(p, q)`` whose operands are themselves canonical. Two
expressions that normalise to the same polynomial compare equal with ``==``;
a result that normalises to a constant is returned as a plain ``int``, so
``Expr == int`` is always ``False``.

**Assumption.** Every symbol stands for an integer ``>= 1`` (dims are
positive). Simplifications of ``max``/``min`` and the three-valued
comparisons (``eq``, ``lt``, ...) use interval bounds derived under this
assumption; they answer ``None`` ("undecidable") rather than guess.

Integer division and modulo follow Python's floor semantics for every
integer value of the symbols. Ints never go through ``Expr``: every helper
checks ``type(x) is int`` first.

**Sharing.** Expressions are immutable, so equal operations share one result:
the operators, ``dim_max``/``dim_min`` and ``Sym(name)`` go through a bounded,
thread-safe memo (see "Memoised entry points"), and a formula re-applied layer
after layer, or model after model, costs dict lookups.
"""

from __future__ import annotations

import functools
import itertools
import math
import numbers
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeAlias

if TYPE_CHECKING:  # `ast` is imported by `parse` only: it costs ~1 ms at import
    import ast

__all__ = [
    "Dim",
    "DimLike",
    "Expr",
    "NotConcreteError",
    "Sym",
    "SymbolicComparisonError",
    "as_dim",
    "bind",
    "bind_rounding_up",
    "bind_shape",
    "definitely_equal",
    "definitely_not_equal",
    "dim_sum",
    "dim_max",
    "dim_min",
    "eq",
    "format_dim",
    "format_shape",
    "free_symbols",
    "ge",
    "gt",
    "is_symbolic",
    "le",
    "lt",
    "ne",
    "parse",
    "prod",
    "resolve",
    "unknown",
]


class SymbolicComparisonError(ValueError):
    """An ordering comparison between dims cannot be decided symbolically."""


class NotConcreteError(ValueError):
    """A symbolic dim was used where a concrete ``int`` is required."""


_INF: Final = math.inf
_SYM: Final = "sym"
_FLOORDIV: Final = "floordiv"
_MOD: Final = "mod"
_MAX: Final = "max"
_MIN: Final = "min"

_anon_counter = itertools.count(1)


class _Atom:
    """A factor of a monomial: a symbol, or an opaque floordiv/mod/max/min."""

    __slots__ = ("op", "name", "lhs", "rhs", "_key", "_hash", "_bounds", "anonymous")

    def __init__(self, op: str, name: str = "", lhs: Dim = 0, rhs: Dim = 0) -> None:
        self.op = op
        self.name = name
        self.lhs = lhs
        self.rhs = rhs
        self._bounds: _Bounds | None = None
        if op == _SYM:
            self._key: str | None = name
            self._hash = hash(name)
            #: whether an anonymous symbol (``Sym(None)``) occurs in the atom
            self.anonymous = name[0] == "?"
        else:  # the text key is rendered only when something is ordered or printed
            self._key = None
            self._hash = hash((op, lhs, rhs))
            self.anonymous = _has_anonymous(lhs) or _has_anonymous(rhs)

    @property
    def key(self) -> str:
        """Orders atoms inside monomials and terms when printing: the atom's text,
        with anonymous symbols spelled by their unique internal name."""
        k = self._key
        if k is None:
            k = self._key = _atom_text(self, internal=True)
        return k

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, _Atom):
            return NotImplemented
        return (
            self._hash == other._hash
            and self.op == other.op
            and self.name == other.name
            and self.lhs == other.lhs
            and self.rhs == other.rhs
        )

    def __reduce__(self) -> tuple[type[_Atom], tuple[str, str, Dim, Dim]]:
        # Rebuild on unpickling: the cached string hash is per-process.
        return (_Atom, (self.op, self.name, self.lhs, self.rhs))

    def bounds(self) -> _Bounds:
        b = self._bounds
        if b is None:
            op = self.op
            if op == _SYM:
                b = (1, _INF)
            elif op == _FLOORDIV:
                b = _floordiv_bounds(_dim_bounds(self.lhs), _dim_bounds(self.rhs))
            elif op == _MOD:
                b = _mod_bounds(_dim_bounds(self.lhs), _dim_bounds(self.rhs))
            else:
                lb, rb = _dim_bounds(self.lhs), _dim_bounds(self.rhs)
                if op == _MAX:
                    b = (max(lb[0], rb[0]), max(lb[1], rb[1]))
                else:
                    b = (min(lb[0], rb[0]), min(lb[1], rb[1]))
            self._bounds = b
        return b


_Bounds: TypeAlias = tuple[float, float]
_Mono: TypeAlias = tuple[tuple[_Atom, int], ...]
_Terms: TypeAlias = dict[_Mono, int]

_set = object.__setattr__


class Expr:
    """A symbolic dim in canonical form (see the module docstring).

    Supports ``+ - * // %`` and unary ``-``/``+`` with ints and other
    expressions; results are normalised (a constant comes back as ``int``, a
    bare symbol as ``Sym``). ``< <= > >=`` return a ``bool`` when the bounds
    decide them and raise ``SymbolicComparisonError`` otherwise.
    """

    __slots__ = ("_terms", "_hash", "_str", "_key", "_bounds")

    _terms: _Terms
    _hash: int | None
    _str: str | None
    _key: str | None
    _bounds: _Bounds | None

    def __new__(cls, *args: object, **kwargs: object) -> Expr:
        raise TypeError(
            "Expr cannot be constructed directly; use Sym(name), parse(text) or arithmetic on dims"
        )

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __reduce__(self) -> tuple[object, tuple[tuple[tuple[_Mono, int], ...]]]:
        return (_from_items, (tuple(self._terms.items()),))

    def __copy__(self) -> Expr:
        return self

    def __deepcopy__(self, memo: object) -> Expr:
        return self

    # -- identity -----------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if isinstance(other, Expr):
            return self._terms == other._terms
        if type(other) is int:
            return False
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        r = self.__eq__(other)
        return r if r is NotImplemented else not r

    def __hash__(self) -> int:
        h = self._hash
        if h is None:
            h = hash(frozenset(self._terms.items()))
            _set(self, "_hash", h)
        return h

    def __str__(self) -> str:
        s = self._str
        if s is None:
            s = _render(self, internal=False)
            _set(self, "_str", s)
        return s

    __repr__ = __str__

    def _sort_key(self) -> str:
        k = self._key
        if k is None:
            k = _render(self, internal=True)
            _set(self, "_key", k)
        return k

    # -- arithmetic ---------------------------------------------------------------
    # Each operator checks for an int or `Expr` operand inline (the common case)
    # before `_coerce` (NumPy integers); results come from the memo (see
    # "Memoised entry points").
    def __add__(self, other: Dim) -> Dim:
        if type(other) is int or isinstance(other, Expr):
            return _memo(_ADD, _add, self, other)
        o = _coerce(other)
        return NotImplemented if o is None else _memo(_ADD, _add, self, o)

    __radd__ = __add__

    def __sub__(self, other: Dim) -> Dim:
        if type(other) is int or isinstance(other, Expr):
            return _memo(_SUB, _sub, self, other)
        o = _coerce(other)
        return NotImplemented if o is None else _memo(_SUB, _sub, self, o)

    def __rsub__(self, other: Dim) -> Dim:
        if type(other) is int or isinstance(other, Expr):
            return _memo(_SUB, _sub, other, self)
        o = _coerce(other)
        return NotImplemented if o is None else _memo(_SUB, _sub, o, self)

    def __mul__(self, other: Dim) -> Dim:
        if type(other) is int or isinstance(other, Expr):
            return _memo(_MUL, _mul, self, other)
        o = _coerce(other)
        return NotImplemented if o is None else _memo(_MUL, _mul, self, o)

    __rmul__ = __mul__

    def __floordiv__(self, other: Dim) -> Dim:
        if type(other) is int or isinstance(other, Expr):
            return _memo(_FLOORDIV, _floordiv, self, other)
        o = _coerce(other)
        return NotImplemented if o is None else _memo(_FLOORDIV, _floordiv, self, o)

    def __rfloordiv__(self, other: Dim) -> Dim:
        if type(other) is int or isinstance(other, Expr):
            return _memo(_FLOORDIV, _floordiv, other, self)
        o = _coerce(other)
        return NotImplemented if o is None else _memo(_FLOORDIV, _floordiv, o, self)

    def __mod__(self, other: Dim) -> Dim:
        if type(other) is int or isinstance(other, Expr):
            return _memo(_MOD, _mod, self, other)
        o = _coerce(other)
        return NotImplemented if o is None else _memo(_MOD, _mod, self, o)

    def __rmod__(self, other: Dim) -> Dim:
        if type(other) is int or isinstance(other, Expr):
            return _memo(_MOD, _mod, other, self)
        o = _coerce(other)
        return NotImplemented if o is None else _memo(_MOD, _mod, o, self)

    def __neg__(self) -> Dim:
        return _memo(_NEG, _neg_of, self, 0)

    def __pos__(self) -> Expr:
        return self

    # -- ordering -----------------------------------------------------------------
    def __lt__(self, other: Dim) -> bool:
        o = _coerce(other)
        if o is None:
            return NotImplemented
        return _decided(lt(self, o), self, "<", o)

    def __le__(self, other: Dim) -> bool:
        o = _coerce(other)
        if o is None:
            return NotImplemented
        return _decided(le(self, o), self, "<=", o)

    def __gt__(self, other: Dim) -> bool:
        o = _coerce(other)
        if o is None:
            return NotImplemented
        return _decided(gt(self, o), self, ">", o)

    def __ge__(self, other: Dim) -> bool:
        o = _coerce(other)
        if o is None:
            return NotImplemented
        return _decided(ge(self, o), self, ">=", o)

    # -- no concrete value --------------------------------------------------------
    def _not_concrete(self) -> NoReturn:
        raise NotConcreteError(
            f"dim {self} is symbolic, not a concrete int; bind its symbols first "
            "(lazyshape.dims.bind)"
        )

    def __index__(self) -> int:
        self._not_concrete()

    def __int__(self) -> int:
        self._not_concrete()

    def __float__(self) -> float:
        self._not_concrete()


class Sym(Expr):
    """A named symbolic dim: ``Sym("B")``; ``Sym(None)`` is a fresh anonymous one.

    Names must be Python identifiers. Each anonymous dim is distinct, prints as
    ``?`` and has a unique internal name such as ``?3``.
    """

    __slots__ = ()

    def __new__(cls, name: str | None = None) -> Sym:
        if name is None:
            return _sym_of(_Atom(_SYM, f"?{next(_anon_counter)}"))
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"symbol name must be a Python identifier, got {name!r}")
        return _named_sym(str(name))

    @property
    def name(self) -> str:
        """The symbol's name (``"?<n>"`` for an anonymous dim)."""
        return next(iter(self._terms))[0][0].name


Dim: TypeAlias = int | Expr
DimLike: TypeAlias = int | str | Expr | None


# ---------------------------------------------------------------------------------
# Construction and normalisation
# ---------------------------------------------------------------------------------
def _new(cls: type[Expr], terms: _Terms) -> Expr:
    e: Expr = object.__new__(cls)
    _set(e, "_terms", terms)
    _set(e, "_hash", None)
    _set(e, "_str", None)
    _set(e, "_key", None)
    _set(e, "_bounds", None)
    return e


def _sym_of(atom: _Atom) -> Sym:
    s = _new(Sym, {((atom, 1),): 1})
    assert isinstance(s, Sym)
    return s


def _wrap(terms: _Terms) -> Dim:
    """Normalise a term dict (no zero coefficients) to ``int``, ``Sym`` or ``Expr``."""
    n = len(terms)
    if n == 0:
        return 0
    if n == 1:
        ((mono, c),) = terms.items()
        if not mono:
            return c
        if c == 1 and len(mono) == 1 and mono[0][1] == 1 and mono[0][0].op == _SYM:
            return _new(Sym, terms)
    return _new(Expr, terms)


def _from_items(items: tuple[tuple[_Mono, int], ...]) -> Dim:
    return _wrap(dict(items))


def _atom_expr(atom: _Atom) -> Dim:
    return _wrap({((atom, 1),): 1})


def _single_atom(d: Dim) -> _Atom | None:
    """The atom ``a`` if ``d`` is exactly ``a`` (coefficient and exponent 1)."""
    if type(d) is int:
        return None
    assert isinstance(d, Expr)
    t = d._terms
    if len(t) != 1:
        return None
    ((mono, c),) = t.items()
    if c == 1 and len(mono) == 1 and mono[0][1] == 1:
        return mono[0][0]
    return None


def _coerce(x: object) -> Dim | None:
    if type(x) is int or isinstance(x, Expr):
        return x
    if isinstance(x, numbers.Integral) and not isinstance(x, bool):
        return int(x)
    return None


def _arg(x: object) -> Dim:
    d = _coerce(x)
    if d is None:
        raise TypeError(f"expected a dim (int or Expr), got {x!r} of type {type(x).__name__}")
    return d


# ---------------------------------------------------------------------------------
# Ring operations
# ---------------------------------------------------------------------------------
def _mono_mul(m1: _Mono, m2: _Mono) -> _Mono:
    if not m1:
        return m2
    if not m2:
        return m1
    d = dict(m1)
    for a, k in m2:
        d[a] = d.get(a, 0) + k
    return tuple(sorted(d.items(), key=lambda ak: ak[0].key))


def _add(a: Dim, b: Dim) -> Dim:
    if type(a) is int:
        if type(b) is int:
            return a + b
        a, b = b, a
    assert isinstance(a, Expr)
    t = dict(a._terms)
    if type(b) is int:
        if b == 0:
            return a
        v = t.get((), 0) + b
        if v:
            t[()] = v
        else:
            del t[()]
        out = _wrap(t)
        known = a._bounds
        if known is not None and type(out) is not int:
            # exact, not an estimate: every bound `_refined_bounds` derives for
            # `a + b` is the one it derives for `a`, shifted by the constant `b`
            _set(out, "_bounds", (known[0] + b, known[1] + b))
        return out
    assert isinstance(b, Expr)
    for m, c in b._terms.items():
        v = t.get(m, 0) + c
        if v:
            t[m] = v
        else:
            del t[m]
    return _wrap(t)


def _neg(a: Dim) -> Dim:
    if type(a) is int:
        return -a
    assert isinstance(a, Expr)
    return _wrap({m: -c for m, c in a._terms.items()})


def _sub(a: Dim, b: Dim) -> Dim:
    return _add(a, _neg(b))


def _mul(a: Dim, b: Dim) -> Dim:
    if type(a) is int:
        if type(b) is int:
            return a * b
        a, b = b, a
    assert isinstance(a, Expr)
    if type(b) is int:
        if b == 0:
            return 0
        if b == 1:
            return a
        return _wrap({m: c * b for m, c in a._terms.items()})
    assert isinstance(b, Expr)
    t: _Terms = {}
    for m1, c1 in a._terms.items():
        for m2, c2 in b._terms.items():
            m = _mono_mul(m1, m2)
            v = t.get(m, 0) + c1 * c2
            if v:
                t[m] = v
            else:
                t.pop(m, None)
    return _wrap(t)


# ---------------------------------------------------------------------------------
# Bounds (every symbol is an integer >= 1)
# ---------------------------------------------------------------------------------
def _imul(a: float, b: float) -> float:
    # 0 * inf is 0 here: the bound is a limit of finite values.
    if a == 0 or b == 0:
        return 0
    return a * b


def _mul_bounds(x: _Bounds, y: _Bounds) -> _Bounds:
    c = (_imul(x[0], y[0]), _imul(x[0], y[1]), _imul(x[1], y[0]), _imul(x[1], y[1]))
    return min(c), max(c)


def _pow_bounds(x: _Bounds, k: int) -> _Bounds:
    lo, hi = x
    if k == 1 or lo >= 0 or k % 2:
        return lo**k, hi**k
    if hi <= 0:
        return hi**k, lo**k
    return 0, max(lo**k, hi**k)


def _floordiv_bounds(p: _Bounds, q: _Bounds) -> _Bounds:
    """Bounds of ``p // q`` for ``q >= 1``; unbounded when ``q``'s sign is unknown."""
    pl, ph = p
    ql, qh = q
    if ql < 1:
        return (-_INF, _INF)
    if pl == -_INF:
        lo: float = -_INF
    elif pl < 0:
        lo = pl // ql
    else:
        lo = 0 if qh == _INF else pl // qh
    if ph == _INF:
        hi: float = _INF
    elif ph >= 0:
        hi = ph // ql
    else:
        hi = -1 if qh == _INF else ph // qh
    return lo, hi


def _mod_bounds(p: _Bounds, q: _Bounds) -> _Bounds:
    """Bounds of ``p % q`` for ``q >= 1``: within ``[0, q - 1]``, and ``p`` itself if small."""
    pl, ph = p
    ql, qh = q
    if ql < 1:
        return (-_INF, _INF)
    if pl >= 0:
        if ph < ql:
            return pl, ph
        return 0, min(ph, qh - 1)
    return 0, qh - 1


def _interval_bounds(e: Expr) -> _Bounds:
    """Plain interval arithmetic over the terms, each atom taken independently."""
    lo: float = 0
    hi: float = 0
    for mono, c in e._terms.items():
        if not mono:
            lo += c
            hi += c
            continue
        if len(mono) == 1:
            atom, k = mono[0]
            mb = atom.bounds() if k == 1 else _pow_bounds(atom.bounds(), k)
        else:
            mb = (1, 1)
            for atom, k in mono:
                mb = _mul_bounds(mb, _pow_bounds(atom.bounds(), k))
        # `c` is a non-zero int: `c * x` is `_imul(c, x)` (never 0 * inf)
        if c > 0:
            lo += c * mb[0]
            hi += c * mb[1]
        else:
            lo += c * mb[1]
            hi += c * mb[0]
    return lo, hi


# How many nested rewrites `_refined_bounds` tries; bounds stay a pure function of
# the canonical form (only full-depth results are cached), so simplifications that
# consult them are deterministic.
_REFINE_DEPTH: Final = 2


def _refined_bounds(d: Dim, depth: int) -> _Bounds:
    """Interval bounds, tightened by relating a linear opaque term to its operands.

    For a term ``c*M`` (rest of the expression ``R``):
    ``max(x, y) >= x, y`` and ``min(x, y) <= x, y`` bound ``R + c*x`` and ``R + c*y``
    from one side; ``k*(p // k)`` lies in ``[p - k + 1, p]``; and
    ``p % k == p - k*(p // k)``. This decides e.g. ``H - H//2 >= 1`` and
    ``max(A, B) >= A``, which independent intervals cannot.
    """
    if type(d) is int:
        return (d, d)
    assert isinstance(d, Expr)
    lo, hi = _interval_bounds(d)
    terms = d._terms
    if depth == 0 or len(terms) - (() in terms) < 2:
        # With one opaque term and a constant (``(H - 1)//4 + 1``) there is nothing
        # to relate: the rewrites below reproduce the atom's own interval.
        return lo, hi
    for mono, c in terms.items():
        if len(mono) != 1 or mono[0][1] != 1 or mono[0][0].op == _SYM:
            continue
        atom = mono[0][0]
        rest = _wrap({m: v for m, v in d._terms.items() if m is not mono})
        if atom.op in (_MAX, _MIN):
            bx = _refined_bounds(_add(rest, _mul(atom.lhs, c)), depth - 1)
            by = _refined_bounds(_add(rest, _mul(atom.rhs, c)), depth - 1)
            if (atom.op == _MAX) == (c > 0):  # d >= both alternatives
                lo = max(lo, bx[0], by[0])
            else:  # d <= both alternatives
                hi = min(hi, bx[1], by[1])
        elif type(atom.rhs) is int:
            p, k = atom.lhs, atom.rhs
            if atom.op == _MOD:
                alt = _add(rest, _mul(_sub(p, _mul(_floordiv_const(p, k), k)), c))
                b = _refined_bounds(alt, depth - 1)
                lo, hi = max(lo, b[0]), min(hi, b[1])
                continue
            # k*d == k*R + c*(k*M) with k*M in [p - k + 1, p].
            base = _mul(rest, k)
            small, big = _add(base, _mul(_add(p, 1 - k), c)), _add(base, _mul(p, c))
            if c < 0:
                small, big = big, small
            sl = _refined_bounds(small, depth - 1)[0]
            bh = _refined_bounds(big, depth - 1)[1]
            if sl != -_INF:
                lo = max(lo, -(-sl // k))
            if bh != _INF:
                hi = min(hi, bh // k)
    return lo, hi


def _bounds(e: Expr) -> _Bounds:
    b = e._bounds
    if b is None:
        b = _refined_bounds(e, _REFINE_DEPTH)
        _set(e, "_bounds", b)
    return b


def _dim_bounds(d: Dim) -> _Bounds:
    if type(d) is int:
        return (d, d)
    assert isinstance(d, Expr)
    return _bounds(d)


def bounds(d: Dim) -> tuple[float, float]:
    """The interval ``(lo, hi)`` a dim is known to lie in (``±inf`` when unbounded;
    cached on an expression). ``d + c`` lies in ``(lo + c, hi + c)``: a rule can
    compare a dim plus a constant without building the sum."""
    if type(d) is int:
        return (d, d)
    assert isinstance(d, Expr)
    b = d._bounds  # `_bounds(d)` inlined: rules call this once per symbolic dim
    return b if b is not None else _bounds(d)


# ---------------------------------------------------------------------------------
# Floor division and modulo
# ---------------------------------------------------------------------------------
def _floordiv(a: Dim, b: Dim) -> Dim:
    if type(b) is int:
        if type(a) is int:
            return a // b
        if b == 0:
            raise ZeroDivisionError("integer division or modulo by zero")
        if b < 0:  # p // -c == (-p) // c
            return _floordiv_const(_neg(a), -b)
        return _floordiv_const(a, b)
    assert isinstance(b, Expr)
    if _bounds(b)[1] < 0:
        return _floordiv(_neg(a), _neg(b))
    k = _sym_quotient(a, b)
    if k is not None:
        return k
    return _atom_expr(_Atom(_FLOORDIV, "", a, b))


def _mod(a: Dim, b: Dim) -> Dim:
    if type(b) is int:
        if type(a) is int:
            return a % b
        if b == 0:
            raise ZeroDivisionError("integer division or modulo by zero")
        if b < 0:  # p % -c == -((-p) % c)
            return _neg(_mod_const(_neg(a), -b))
        return _mod_const(a, b)
    assert isinstance(b, Expr)
    if _bounds(b)[1] < 0:
        return _neg(_mod(_neg(a), _neg(b)))
    k = _sym_quotient(a, b)
    if k is not None:
        return _sub(a, _mul(b, k))
    return _atom_expr(_Atom(_MOD, "", a, b))


def _sym_quotient(a: Dim, b: Expr) -> int | None:
    """An int ``k`` with ``a == k*b + r``, ``r == 0`` or provably ``0 <= r < b``; else None."""
    cands = [0]
    if type(a) is not int:
        assert isinstance(a, Expr)
        ta = a._terms
        for m, cb in b._terms.items():
            ca = ta.get(m)
            if m and ca is not None:
                k = ca // cb
                cands += [k, k - 1]
                break
    b_pos = _bounds(b)[0] >= 1
    for k in cands:
        r = _sub(a, _mul(b, k))
        if r == 0:
            return k
        if b_pos and _dim_bounds(r)[0] >= 0 and _dim_bounds(_sub(b, r))[0] >= 1:
            return k
    return None


def _trunc_split(a: Expr, c: int) -> tuple[_Terms, _Terms, int]:
    """Split ``a`` as ``c*q + r + k``: ``q`` the terms divisible by ``c`` (divided),
    ``r`` the other non-constant terms, ``k`` a constant with ``|k| < c`` (the
    constant's multiple of ``c`` truncated towards zero goes into ``q``)."""
    q: _Terms = {}
    r: _Terms = {}
    k = 0
    for m, v in a._terms.items():
        if not m:
            k = v
        elif v % c == 0:
            q[m] = v // c
        else:
            r[m] = v
    t = k // c if k >= 0 else -(-k // c)
    if t:
        q[()] = t
    return q, r, k - t * c


def _split_rest(a: Expr, q: _Terms, r: _Terms, k: int) -> tuple[Dim, Expr]:
    """``(q, r + k)`` of `_trunc_split`'s ``a == c*q + r + k`` as dims (``r`` not
    empty). With nothing split off, ``r + k`` is ``a`` itself: no new object, and
    ``a``'s cached hash and bounds are kept."""
    if not q:
        return 0, a
    if k:
        r[()] = k
    rd = _wrap(r)
    assert isinstance(rd, Expr)  # `r` has a non-constant term
    return _wrap(q), rd


def _floordiv_const(a: Dim, c: int) -> Dim:
    """``p // c`` for an int ``c > 0``, with ``p = c*q + r``: ``q + r // c``.

    ``r // c`` is further normalised: with ``g = gcd(c, coefficients of r)``,
    ``(g*s + k) // c == (s + k // g) // (c // g)``; it is a constant when the
    bounds of ``r`` fall within one multiple of ``c``; and
    ``(x // d + k) // c == (x + k*d) // (d*c)``.
    """
    if type(a) is int:
        return a // c
    assert isinstance(a, Expr)
    if c == 1:
        return a
    q, r, k = _trunc_split(a, c)
    if not r:
        return _add(_wrap(q), k // c)
    g = c
    for v in r.values():
        g = math.gcd(g, v)
    if g > 1:
        s = {m: v // g for m, v in r.items()}
        if k // g:
            s[()] = k // g
        return _add(_wrap(q), _floordiv_const(_wrap(s), c // g))
    qd, rd = _split_rest(a, q, r, k)
    lo, hi = _interval_bounds(rd)  # plain intervals: this runs on every division
    if lo != -_INF and hi != _INF and lo // c == hi // c:
        return _add(qd, int(lo // c))
    inner, k = _atom_plus_const(rd)
    if inner is not None and inner.op == _FLOORDIV and type(inner.rhs) is int:
        d = inner.rhs
        return _add(qd, _floordiv_const(_add(inner.lhs, k * d), d * c))
    return _add(qd, _atom_expr(_Atom(_FLOORDIV, "", rd, c)))


def _mod_const(a: Dim, c: int) -> Dim:
    """``p % c`` for an int ``c > 0``, with ``p = c*q + r``: ``r % c``.

    Normalised like ``_floordiv_const``: ``(g*s + k) % c == g*((s + k // g) % (c // g)) + k % g``
    with ``g = gcd(c, coefficients of r)``; ``r - c*m`` when the bounds of ``r`` lie in
    ``[c*m, c*m + c)``; and ``(x % d + k) % c == (x + k) % c`` when ``c`` divides ``d``.
    """
    if type(a) is int:
        return a % c
    assert isinstance(a, Expr)
    if c == 1:
        return 0
    q, r, k = _trunc_split(a, c)
    if not r:
        return k % c
    g = c
    for v in r.values():
        g = math.gcd(g, v)
    if g > 1:
        s = {m: v // g for m, v in r.items()}
        if k // g:
            s[()] = k // g
        return _add(_mul(_mod_const(_wrap(s), c // g), g), k % g)
    _, rd = _split_rest(a, q, r, k)
    lo, hi = _interval_bounds(rd)  # plain intervals: this runs on every division
    if lo != -_INF and hi != _INF and lo // c == hi // c:
        return _sub(rd, int(lo // c) * c)
    inner, k = _atom_plus_const(rd)
    if inner is not None and inner.op == _MOD and type(inner.rhs) is int and inner.rhs % c == 0:
        return _mod_const(_add(inner.lhs, k), c)
    return _atom_expr(_Atom(_MOD, "", rd, c))


def _atom_plus_const(d: Dim) -> tuple[_Atom | None, int]:
    """``(a, k)`` if ``d == a + k`` for an atom ``a`` (coefficient 1), else ``(None, 0)``."""
    if type(d) is int:
        return None, 0
    assert isinstance(d, Expr)
    t = d._terms
    k = t.get((), 0)
    if len(t) != (2 if k else 1):
        return None, 0
    for m, c in t.items():
        if m and c == 1 and len(m) == 1 and m[0][1] == 1:
            return m[0][0], k
    return None, 0


# ---------------------------------------------------------------------------------
# max / min
# ---------------------------------------------------------------------------------
def _order_key(d: Dim) -> tuple[int, str]:
    if type(d) is int:
        return (0, str(d))
    assert isinstance(d, Expr)
    return (1, d._sort_key())


def _max_min(op: str, a: Dim, b: Dim) -> Dim:
    d = _sub(a, b)
    lo, hi = _dim_bounds(d)
    if lo >= 0 and hi <= 0:  # provably equal: one pick for (a, b) and (b, a), an int first
        return min(a, b, key=_order_key)
    if lo >= 0:
        return a if op == _MAX else b
    if hi <= 0:
        return b if op == _MAX else a
    x, y = sorted((a, b), key=_order_key)
    return _atom_expr(_Atom(op, "", x, y))


def dim_max(a: Dim, b: Dim) -> Dim:
    """``max(a, b)``; symbolic when the sign of ``a - b`` is not decided by the bounds."""
    if type(a) is int and type(b) is int:
        return a if a >= b else b
    return _memo(_MAX, _dim_max, _arg(a), _arg(b))


def dim_min(a: Dim, b: Dim) -> Dim:
    """``min(a, b)``; symbolic when the sign of ``a - b`` is not decided by the bounds."""
    if type(a) is int and type(b) is int:
        return a if a <= b else b
    return _memo(_MIN, _dim_min, _arg(a), _arg(b))


# ---------------------------------------------------------------------------------
# Memoised entry points (hash-consing by operation)
# ---------------------------------------------------------------------------------
# The operators of `Expr` and `dim_max`/`dim_min` go through one memo, `_MEMO`
# (``(op, a, b) -> result``), and `Sym(name)` through `_named_sym`: the same
# operation on equal operands returns the *same* result object. A shape rule
# applied layer after layer to `H` (conv/pool formulas) then costs dict lookups,
# the results' lazily cached hash, text and bounds are computed once, and chains
# stay shared: an operand that came out of the memo hits the next lookup by
# identity, the cheapest comparison.
#
# Why this is safe, also with `infer` running concurrently in many threads:
# - it is a pure memo: a result is a function of the *values* of the operands
#   (canonical forms, ints, an op tag), never of object identity or of anything
#   else, so a hit returns a value equal to what recomputing would give;
# - keys and results are immutable (`Expr`'s only mutations are idempotent lazy
#   caches of pure functions of its value: hash, text, bounds), so sharing a
#   result between callers or threads cannot leak state between them;
# - keys compare by value, and dims of different kinds never compare equal
#   (`Expr == int` is False, bools are rejected before reaching the memo), so a
#   key only matches an equal key;
# - it is bounded: full, it is emptied (`_remember`). Each lookup and each store
#   holds `_MEMO_LOCK` (the computation between them does not); a race can only
#   drop entries or store an equal value twice, so the worst outcome is a
#   recomputation. (Emptied whole rather than entry by entry,
#   it never drops a result while keeping entries keyed by that result: their
#   lookups would then meet an equal new object, and hit only by a structural
#   comparison, slower than identity.)
# Operations on anonymous dims (``Sym(None)``: a fresh one per unknown input dim
# or model built) are computed but not stored: their keys never come back, and
# would only push out the entries that do.
# Internal arithmetic (normalisation, bounds) calls the plain functions: its
# transient values would only churn the memo.
_MEMO: Final[dict[tuple[Any, ...], Dim]] = {}
#: guards every `_MEMO` operation: a lookup compares keys with `Expr.__eq__`,
#: Python code during which another thread may store into or empty the dict,
#: and CPython's dict is not safe against that (seen: wrong results and crashes
#: under many threads switching every microsecond, `tests/test_dims.py`)
_MEMO_LOCK: Final = threading.Lock()
_MEMO_SIZE: Final = 4096
# op tags of `_MEMO` keys (`_MAX`, `_MIN`, `_FLOORDIV`, `_MOD` are reused)
_ADD: Final = "add"
_SUB: Final = "sub"
_MUL: Final = "mul"
_PROD: Final = "prod"
_SUM: Final = "sum"
_SHIFTDIV: Final = "shiftdiv"
_NEG: Final = "neg"


def _remember(key: tuple[str, Dim, Dim], value: Dim) -> Dim:
    """Store ``value`` as the result of ``key`` (unless an operand has an
    anonymous symbol) and return it."""
    return _store(key, value, (key[1], key[2]))


def _store(key: tuple[Any, ...], value: Dim, operands: Iterable[Dim]) -> Dim:
    """Store ``value`` under a memo ``key`` of ``operands`` (unless one has an
    anonymous symbol: its key never comes back) and return it."""
    for d in operands:
        if type(d) is not int and _has_anonymous(d):
            return value
    with _MEMO_LOCK:
        if len(_MEMO) >= _MEMO_SIZE:
            _MEMO.clear()
        _MEMO[key] = value
    return value


def _has_anonymous(d: Dim) -> bool:
    """Whether ``d`` involves an anonymous symbol (``Sym(None)``)."""
    if type(d) is int:
        return False
    assert isinstance(d, Expr)
    for mono in d._terms:
        for atom, _ in mono:
            if atom.anonymous:
                return True
    return False


def _memo(tag: str, fn: Callable[[Dim, Dim], Dim], a: Dim, b: Dim) -> Dim:
    """``fn(a, b)`` through `_MEMO`, under the key ``(tag, a, b)`` (an exception
    of ``fn``, a ``ZeroDivisionError``, propagates and nothing is stored)."""
    key = (tag, a, b)
    with _MEMO_LOCK:
        r = _MEMO.get(key)
    return _remember(key, fn(a, b)) if r is None else r


def _neg_of(a: Dim, _: Dim) -> Dim:
    """``-a`` (the binary signature `_memo` calls; the second operand is 0)."""
    return _neg(a)


_dim_max: Final = functools.partial(_max_min, _MAX)
_dim_min: Final = functools.partial(_max_min, _MIN)


@functools.lru_cache(maxsize=1024)
def _named_sym(name: str) -> Sym:
    """The interned ``Sym`` of a (validated) name: ``Sym("H") is Sym("H")`` (a pure,
    bounded, thread-safe memo of an immutable value, like `_MEMO`)."""
    return _sym_of(_Atom(_SYM, name))


def _clear_memos() -> None:
    """Empty the memos (tests and cold-cache benchmarks; never needed for correctness)."""
    _MEMO.clear()
    _named_sym.cache_clear()


# ---------------------------------------------------------------------------------
# Three-valued comparisons
# ---------------------------------------------------------------------------------
def _diff_bounds(a: Dim, b: Dim) -> _Bounds:
    """The bounds of ``a - b``.

    Against an int ``c`` nothing is built: ``bounds(e - c)`` is ``bounds(e)``
    shifted by ``-c`` and ``bounds(c - e)`` is ``c`` minus ``bounds(e)`` reversed.
    Both are exactly what the refined bounds of the difference give (every bound
    `_refined_bounds` derives is shifted by a constant term and negated with the
    expression; `tests/test_dims.py` checks it), so the verdicts do not change.
    """
    if a is b:
        return (0, 0)
    if type(b) is int:
        lo, hi = bounds(a)
        return (lo - b, hi - b)
    if type(a) is int:
        lo, hi = bounds(b)
        return (a - hi, a - lo)
    return _dim_bounds(_memo(_SUB, _sub, a, b))


def eq(a: Dim, b: Dim) -> bool | None:
    """``a == b``: True, False, or None when it cannot be decided."""
    if type(a) is int and type(b) is int:
        return a == b
    a, b = _arg(a), _arg(b)  # NumPy integers become ints
    if a is b:
        return True
    if type(a) is int and type(b) is int:
        return a == b
    if type(a) is int or type(b) is int:
        # a non-constant canonical form is never an int: `a - b` is not 0
        lo, hi = _diff_bounds(a, b)
    else:
        d = _memo(_SUB, _sub, a, b)
        if type(d) is int:
            return d == 0
        assert isinstance(d, Expr)
        lo, hi = bounds(d)
    if lo > 0 or hi < 0:
        return False
    return None


def ne(a: Dim, b: Dim) -> bool | None:
    """``a != b``: True, False, or None when it cannot be decided."""
    r = eq(a, b)
    return None if r is None else not r


def lt(a: Dim, b: Dim) -> bool | None:
    """``a < b``: True, False, or None when it cannot be decided."""
    if type(a) is int and type(b) is int:
        return a < b
    lo, hi = _diff_bounds(_arg(a), _arg(b))
    if hi < 0:
        return True
    if lo >= 0:
        return False
    return None


def le(a: Dim, b: Dim) -> bool | None:
    """``a <= b``: True, False, or None when it cannot be decided."""
    if type(a) is int and type(b) is int:
        return a <= b
    lo, hi = _diff_bounds(_arg(a), _arg(b))
    if hi <= 0:
        return True
    if lo > 0:
        return False
    return None


def gt(a: Dim, b: Dim) -> bool | None:
    """``a > b``: True, False, or None when it cannot be decided."""
    return lt(b, a)


def ge(a: Dim, b: Dim) -> bool | None:
    """``a >= b``: True, False, or None when it cannot be decided."""
    return le(b, a)


def definitely_equal(a: Dim, b: Dim) -> bool:
    """True only if ``a == b`` for every value of the symbols."""
    return eq(a, b) is True


def definitely_not_equal(a: Dim, b: Dim) -> bool:
    """True only if ``a != b`` for every value of the symbols."""
    return eq(a, b) is False


def resolve(pred: bool | None, default: bool) -> bool:
    """The decided value of a three-valued predicate, or ``default`` when undecidable."""
    return default if pred is None else pred


def _decided(r: bool | None, a: Dim, op: str, b: Dim) -> bool:
    if r is None:
        raise SymbolicComparisonError(
            f"cannot decide {format_dim(a)} {op} {format_dim(b)} symbolically; use the "
            "three-valued helpers with lazyshape.dims.resolve(pred, default=...) or "
            "lazyshape.dims.definitely_* instead"
        )
    return r


# ---------------------------------------------------------------------------------
# Inspection and substitution
# ---------------------------------------------------------------------------------
def is_symbolic(d: Dim) -> bool:
    """Whether ``d`` is a symbolic ``Expr`` (not a plain int)."""
    return isinstance(d, Expr)


def free_symbols(d: Dim) -> frozenset[str]:
    """Names of the symbols in ``d`` (anonymous dims by their internal ``?<n>`` name)."""
    if type(d) is int:
        return frozenset()
    out: set[str] = set()
    _collect_symbols(_arg(d), out)
    return frozenset(out)


def _collect_symbols(d: Dim, out: set[str]) -> None:
    if type(d) is int:
        return
    assert isinstance(d, Expr)
    for mono in d._terms:
        for atom, _ in mono:
            if atom.op == _SYM:
                out.add(atom.name)
            else:
                _collect_symbols(atom.lhs, out)
                _collect_symbols(atom.rhs, out)


def bind(d: Dim, values: Mapping[str, Dim]) -> Dim:
    """Substitute ``values`` (symbol name -> dim) into ``d``.

    Binding every symbol gives an ``int``, computed with Python's floor ``//``
    and ``%`` (``ZeroDivisionError`` propagates); unbound symbols stay symbolic.
    """
    if type(d) is int:
        return d
    return _subst(_arg(d), values)


def bind_shape(shape: tuple[Dim, ...], values: Mapping[str, Dim]) -> tuple[Dim, ...]:
    """``bind`` applied to every dim of ``shape``."""
    return tuple(d if type(d) is int else bind(d, values) for d in shape)


def bind_rounding_up(d: Dim, values: Mapping[str, Dim]) -> Dim:
    """`bind`, with every floor division rounded the other way: ``a // b`` as
    ``ceil(a / b)``, so a ceil division (``-(-a // b)``) as a floor one. A
    rule's output computed with the rounding flipped: the floor<->ceil mutant
    of `lazyshape.testing.mutation_score`."""
    if type(d) is int:
        return d
    return _subst(_arg(d), values, flip=True)


def _subst(d: Dim, env: Mapping[str, Dim], flip: bool = False) -> Dim:
    if type(d) is int:
        return d
    assert isinstance(d, Expr)
    total: Dim = 0
    for mono, c in d._terms.items():
        v: Dim = c
        for atom, k in mono:
            x = _subst_atom(atom, env, flip)
            for _ in range(k):
                v = _mul(v, x)
        total = _add(total, v)
    return total


def _subst_atom(atom: _Atom, env: Mapping[str, Dim], flip: bool = False) -> Dim:
    op = atom.op
    if op == _SYM:
        if atom.name in env:
            return _arg(env[atom.name])
        return _atom_expr(atom)
    lhs, rhs = _subst(atom.lhs, env, flip), _subst(atom.rhs, env, flip)
    if op == _FLOORDIV:
        return _neg(_floordiv(_neg(lhs), rhs)) if flip else _floordiv(lhs, rhs)
    if op == _MOD:
        return _mod(lhs, rhs)
    return dim_max(lhs, rhs) if op == _MAX else dim_min(lhs, rhs)


def prod(dims: Iterable[Dim]) -> Dim:
    """The product of ``dims`` (1 for none): the ints first, in plain
    arithmetic, then the symbolic factors."""
    const = 1
    symbolic: list[Dim] = []
    for d in dims:
        if type(d) is int:
            const *= d
        elif isinstance(d, Expr):
            symbolic.append(d)
        else:
            d = _arg(d)
            if type(d) is int:
                const *= d
            else:
                symbolic.append(d)
    if not symbolic or const == 0:
        return const
    if len(symbolic) == 1 and const == 1:
        return symbolic[0]
    # a whole shape's product is one memo entry (see "Memoised entry points"):
    # the same shape's size is asked for again and again (bytes, FLOPs, reshapes)
    factors = tuple(symbolic)
    key = (_PROD, factors, const)
    with _MEMO_LOCK:
        r = _MEMO.get(key)
    if r is not None:
        return r
    out: Dim = factors[0]
    for d in factors[1:]:
        out = _memo(_MUL, _mul, out, d)
    if const != 1:
        out = _memo(_MUL, _mul, out, const)
    return _store(key, out, factors)


def shifted_floordiv(d: Dim, shift: int, divisor: int, offset: int = 0) -> Dim:
    """``(d + shift) // divisor + offset`` (a convolution's or pooling's output
    size), one memo entry for the whole formula: the same size of the same
    input, layer after layer, is one lookup. Any other integer-like ``d`` (a
    NumPy integer, a framework's own symbolic dim at run time) gets the plain
    arithmetic."""
    if not isinstance(d, Expr):
        return (d + shift) // divisor + offset
    key = (_SHIFTDIV, d, (shift, divisor, offset))
    with _MEMO_LOCK:
        r = _MEMO.get(key)
    if r is not None:
        return r
    return _store(key, ((d + shift) // divisor) + offset, (d,))


def dim_sum(dims: Iterable[Dim]) -> Dim:
    """The sum of ``dims`` (0 for none), its terms merged once: summing ``n``
    expressions costs one pass over their terms, not ``n`` intermediate
    expressions."""
    # equal expressions (the memo hands out one object for each) are counted
    # first, and their terms merged once, scaled by their count
    return weighted_sum(zip(dims, itertools.repeat(1)))


def weighted_sum(pairs: Iterable[tuple[Dim, int]]) -> Dim:
    """``sum(d * k for d, k in pairs)``, its terms merged once (a tally of
    repeated sizes: a model's layers of one shape)."""
    const = 0
    counts: dict[Expr, int] = {}
    for d, k in pairs:
        if type(d) is int:
            const += d * k
            continue
        e = _arg(d)
        if type(e) is int:
            const += e * k
            continue
        assert isinstance(e, Expr)
        counts[e] = counts.get(e, 0) + k
    return _counted_sum(counts, const)


def _counted_sum(counts: dict[Expr, int], const: int) -> Dim:
    """``const + sum(e * k for e, k in counts.items())``."""
    if not counts:
        return const
    # the same sum (a model's FLOPs or bytes, model after model) is one memo
    # entry, keyed by its multiset of expressions (see "Memoised entry points")
    key = (_SUM, frozenset(counts.items()), const)
    with _MEMO_LOCK:
        r = _MEMO.get(key)
    if r is not None:
        return r
    terms: _Terms = {}
    for e, k in counts.items():
        if not k:
            continue
        for m, c in e._terms.items():
            v = terms.get(m, 0) + c * k
            if v:
                terms[m] = v
            else:
                del terms[m]
    if const:
        v = terms.get((), 0) + const
        if v:
            terms[()] = v
        else:
            del terms[()]
    return _store(key, _wrap(terms), counts)


def unknown() -> Sym:
    """A fresh anonymous dim, distinct from every other; prints as ``?``."""
    return Sym(None)


def as_dim(x: object) -> Dim:
    """Interpret ``x`` as a dim.

    A non-negative int (NumPy integers included, bools rejected) stays an
    int; a name such as ``"B"`` becomes ``Sym("B")``; an expression string such
    as ``"H//2"`` is parsed; ``None`` is a fresh ``unknown()``; an ``Expr`` is
    returned as is.
    """
    if type(x) is int:
        if x < 0:
            raise ValueError(f"dims must be non-negative, got {x}")
        return x
    if isinstance(x, Expr):
        return x
    if x is None:
        return unknown()
    if isinstance(x, str):
        if x.isidentifier():
            return Sym(x)
        d = parse(x)
        if (d if type(d) is int else bounds(d)[1]) < 0:  # negative whatever the symbols
            raise ValueError(f"dims must be non-negative, got {x!r}")
        return d
    if isinstance(x, numbers.Integral) and not isinstance(x, bool):
        return as_dim(int(x))
    raise TypeError(
        f"cannot interpret {x!r} (type {type(x).__name__}) as a dim; expected a "
        "non-negative int, a symbol name or expression string, an Expr, or None"
    )


# ---------------------------------------------------------------------------------
# Printing
# ---------------------------------------------------------------------------------
def _text(d: Dim, internal: bool) -> str:
    if type(d) is int:
        return str(d)
    assert isinstance(d, Expr)
    return d._sort_key() if internal else str(d)


def _operand_text(d: Dim, internal: bool) -> str:
    # Operands of // and % are bare only when that cannot change how they parse.
    if type(d) is int:
        return str(d) if d >= 0 else f"({d})"
    atom = _single_atom(d)
    s = _text(d, internal)
    if atom is not None and atom.op in (_SYM, _MAX, _MIN):
        return s
    return f"({s})"


def _atom_text(atom: _Atom, internal: bool) -> str:
    op = atom.op
    if op == _SYM:
        return "?" if not internal and atom.name.startswith("?") else atom.name
    if op in (_MAX, _MIN):
        return f"{op}({_text(atom.lhs, internal)}, {_text(atom.rhs, internal)})"
    sep = "//" if op == _FLOORDIV else " % "
    return f"{_operand_text(atom.lhs, internal)}{sep}{_operand_text(atom.rhs, internal)}"


def _term_order(term: tuple[_Mono, int]) -> tuple[int, tuple[tuple[str, int], ...]]:
    mono = term[0]
    return (-sum(k for _, k in mono), tuple((a.key, -k) for a, k in mono))


def _render(e: Expr, internal: bool) -> str:
    """Terms by decreasing degree then name, constant last: ``16*H*W - H + 3``."""
    parts: list[str] = []
    for i, (mono, c) in enumerate(sorted(e._terms.items(), key=_term_order)):
        absc = -c if c < 0 else c
        if not mono:
            body = str(absc)
        else:
            factors: list[tuple[str, bool]] = [] if absc == 1 else [(str(absc), False)]
            for atom, k in mono:
                s = atom.key if internal else _atom_text(atom, internal)
                factors.extend([(s, atom.op in (_FLOORDIV, _MOD))] * k)
            # `-H//2` or `2*H//2` would parse differently: parenthesise // and %
            # unless the atom stands alone.
            alone = len(factors) == 1 and not (i == 0 and c < 0)
            body = "*".join(f"({s})" if wrap and not alone else s for s, wrap in factors)
        if i == 0:
            parts.append(f"-{body}" if c < 0 else body)
        else:
            parts.append(f" - {body}" if c < 0 else f" + {body}")
    return "".join(parts)


def format_dim(d: Dim) -> str:
    """Text of one dim: ``16``, ``B``, ``(H - 1)//4 + 1``."""
    return str(d)


def format_shape(shape: tuple[Dim, ...]) -> str:
    """Text of a shape: ``(B, 16)``, ``(4,)``, ``()``."""
    if len(shape) == 1:
        return f"({shape[0]},)"
    return "(" + ", ".join(str(d) for d in shape) + ")"


# ---------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------
# keyed by the name of the `ast` operator class (`ast` is imported on first parse)
_BINOPS: Final = {
    "Add": _add,
    "Sub": _sub,
    "Mult": _mul,
    "FloorDiv": _floordiv,
    "Mod": _mod,
}
_OP_NAMES: Final = {
    "Pow": "**",
    "Div": "/ (use // for integer division)",
    "MatMult": "@",
    "LShift": "<<",
    "RShift": ">>",
    "BitAnd": "&",
    "BitOr": "|",
    "BitXor": "^",
}
_ALLOWED: Final = "ints, names, + - * // %, unary -, parentheses, max(a, b), min(a, b)"


def parse(text: str) -> Dim:
    """Parse a dim expression such as ``"(H - 1)//4 + 1"`` or ``"max(A, B)"``.

    Accepts ints, names (symbols), ``+ - * // %``, unary ``-``/``+``,
    parentheses, ``max(a, b)`` and ``min(a, b)``; anything else raises
    ``ValueError``. ``parse(str(e)) == e`` for expressions over named symbols.
    """
    import ast

    if not isinstance(text, str):
        raise TypeError(f"parse expects a str, got {type(text).__name__}")
    shown = text if len(text) <= 60 else text[:57] + "..."
    try:
        tree = ast.parse(text.strip(), mode="eval")
        return _from_ast(tree.body, text)
    except SyntaxError as e:
        raise ValueError(f"cannot parse dim expression {shown!r}: {e.msg}") from None
    except ZeroDivisionError:
        raise ValueError(f"division by zero in dim expression {shown!r}") from None
    except (RecursionError, MemoryError):  # Python's own parser gives up on such nesting
        raise ValueError(f"dim expression {shown!r} is nested too deeply") from None


def _from_ast(node: ast.expr, text: str) -> Dim:
    import ast

    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.Name):
        return Sym(node.id)
    if isinstance(node, ast.BinOp):
        op = type(node.op).__name__
        fn = _BINOPS.get(op)
        if fn is None:
            name = _OP_NAMES.get(op, op)
            raise ValueError(
                f"unsupported operator {name} in dim expression {text!r}; allowed: {_ALLOWED}"
            )
        return fn(_from_ast(node.left, text), _from_ast(node.right, text))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        v = _from_ast(node.operand, text)
        return _neg(v) if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.Call):
        fname = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
        if fname not in (_MAX, _MIN):
            raise ValueError(
                f"unsupported function {fname!r} in dim expression {text!r}; "
                "only max(a, b) and min(a, b) are allowed"
            )
        if node.keywords or len(node.args) != 2:
            raise ValueError(f"{fname} takes exactly two positional arguments in {text!r}")
        a, b = (_from_ast(x, text) for x in node.args)
        return dim_max(a, b) if fname == _MAX else dim_min(a, b)
    raise ValueError(
        f"unsupported syntax {ast.unparse(node)!r} in dim expression {text!r}; allowed: {_ALLOWED}"
    )
