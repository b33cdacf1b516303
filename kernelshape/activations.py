"""Activations: sympy expressions with parameters, kinks and numeric callables.

An :class:`Activation` wraps a sympy expression in the variable :data:`~kernelshape.parsing.X`
(``x``), possibly with parameters (sympy symbols) that are either fixed to numbers or left
free. It knows where the expression is not smooth (``kinks``), splits it into analytic
``pieces`` for quadrature, and evaluates it in float64 (numba-jitted) or in mpmath.

The maps (``q_map``, ``c_map``, ...) are methods that delegate to :mod:`kernelshape.maps`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping

import mpmath
import numpy as np
import sympy as sp

from . import _structure
from ._builtins import BUILTIN_ACTIVATIONS, suggest
from ._memo import Memo, ReadOnlyValues, activation_key
from .errors import (
    ActivationError,
    ExpressionError,
    FreeParameterError,
    ImmutableError,
    InfiniteMomentError,
    KernelShapeError,
    MagnitudeError,
    NotRealError,
    UnknownNameError,
)
from .parsing import X, as_sympy, check_constants, parse_expression

__all__ = ["BUILTIN_FORMULAS", "Activation", "Kink", "activation", "builtins"]  # noqa: F822

def _sym(name):
    return sp.Symbol(name, real=True)


def _builder(build):
    return lambda *params: build(X, *params)


# name -> (expression builder taking parameter symbols, {parameter: default or None=free});
# the definitions live in the parser, where the same names work as functions in text
_BUILTINS = {name: (_builder(build), defaults)
             for name, (build, defaults) in BUILTIN_ACTIVATIONS.items()}

#: The 16 activation names of the ``dks`` package (same definitions).
DKS_NAMES = ("tanh", "softplus", "relu", "leaky_relu", "selu", "elu", "swish", "sigmoid",
             "erf", "bentid", "atan", "asinh", "square", "softsign", "gelu", "gelu_exact")



@functools.cache
def _builtin_formulas() -> dict[str, str]:
    return {name: str(build(*[_sym(p) for p in defaults]))
            for name, (build, defaults) in _BUILTINS.items()}


def __getattr__(name):
    # BUILTIN_FORMULAS (built-in name -> formula text) is built on first use: building 21
    # sympy expressions at import would slow down `import kernelshape`.
    if name == "BUILTIN_FORMULAS":
        return dict(_builtin_formulas())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def builtins() -> tuple[str, ...]:
    """Names of the built-in activations.

    Example:
        >>> "tanh" in builtins() and "gelu_exact" in builtins()
        True
    """
    return tuple(_BUILTINS)


@dataclasses.dataclass(frozen=True)
class Kink:
    """A point where the activation is not smooth.

    Attributes:
        location: x value of the kink.
        order: lowest derivative order that jumps there: 0 = a jump of phi itself,
            1 = a kink (phi' jumps, phi'' holds a Dirac mass), 2 = phi'' jumps, 3 = phi''' jumps.
        jumps: the jumps (right minus left limit) of phi, phi', phi'' at the point.

    Example:
        >>> activation("relu").kinks[0]
        Kink(location=0.0, order=1, jumps=(0.0, 1.0, 0.0))
    """

    location: float
    order: int
    jumps: tuple[float, float, float]


@dataclasses.dataclass(frozen=True)
class Piece:
    """An interval ``(lo, hi)`` on which the activation is the analytic ``branch``-th piece."""

    lo: float
    hi: float
    branch: int


class Activation:
    """An activation function ``phi(x)`` as a sympy expression, with parameters.

    Build one with :func:`activation`. Parameters are real sympy symbols; ``values`` holds
    the fixed ones, the others are ``free``. Numeric evaluation and maps need every
    parameter fixed (see :meth:`fix`).

    Activations are read-only: :func:`activation` returns one shared object per input, and
    the analysis done on it (kinks, pieces, compiled kernels) is kept for every later
    use. Setting an attribute raises :class:`~kernelshape.errors.ImmutableError`;
    :meth:`fix` and :meth:`affine` make changed copies.

    Example:
        >>> phi = activation("tanh")
        >>> float(phi(0.5))  # doctest: +ELLIPSIS
        0.46211715726000...
    """

    def __init__(self, expr: sp.Expr, *, name: str | None = None,
                 values: Mapping[str, float] | None = None):
        if isinstance(expr, str):  # text goes through the safe parser, never sympify
            expr = parse_expression(expr, tuple(values or ()))
        expr = as_sympy(expr, "an activation expression")
        if not isinstance(expr, sp.Expr):
            raise ExpressionError(f"expected a sympy expression, got {type(expr).__name__}")
        check_constants(expr)
        symbols = {s.name: s for s in expr.free_symbols}
        if X.name not in symbols:
            raise ExpressionError(f"expression {expr} does not depend on x")
        if symbols[X.name] != X:
            expr = expr.subs(symbols[X.name], X)
        self._symbols = {n: s for n, s in symbols.items() if n != X.name}
        values = dict(values or {})
        for key in values:
            if key not in self._symbols:
                raise ActivationError(
                    f"unknown parameter {key!r}; this activation has parameters "
                    f"{sorted(self._symbols) or 'none'}")
        self._template = expr  # with all parameters symbolic
        self.values = ReadOnlyValues({k: _check_value(k, v) for k, v in values.items()})
        self.name = name
        self.expr = expr.subs({self._symbols[k]: _exact(v) for k, v in self.values.items()})
        self.base = self
        self.affine_params = (1.0, 0.0, 0.0, 1.0)
        self.__dict__["_sealed"] = True
        if not self.free:
            self._check_real()

    @classmethod
    def _affine_of(cls, base: Activation, params) -> Activation:
        """``g * (base(a x + b) + d)`` sharing the base's pieces and compiled kernels."""
        a, b, d, g = params
        new = cls.__new__(cls)
        new._symbols = {}
        new.values = ReadOnlyValues()
        new.name = None
        a_, b_, d_, g_ = (_exact(v) for v in params)
        new.expr = g_ * (base.expr.subs(X, a_ * X + b_) + d_)
        new._template = new.expr
        new.base = base
        new.affine_params = (a, b, d, g)
        new.__dict__["_sealed"] = True
        return new

    def __setattr__(self, key, value):
        # cached analysis goes into __dict__ directly (functools.cached_property does too)
        if self.__dict__.get("_sealed"):
            raise ImmutableError(
                f"Activation objects are read-only (activation() shares one object per "
                f"input); cannot set {key!r}. Use .fix(...) or .affine(...) for a changed "
                "copy")
        object.__setattr__(self, key, value)

    def __delattr__(self, key):
        raise ImmutableError(f"Activation objects are read-only; cannot delete {key!r}")

    # -- description ---------------------------------------------------------------------
    @property
    def parameters(self) -> tuple[str, ...]:
        """Names of all parameters (fixed or free), sorted."""
        return tuple(sorted(self._symbols))

    @property
    def free(self) -> tuple[str, ...]:
        """Names of the parameters still free."""
        return tuple(n for n in self.parameters if n not in self.values)

    @property
    def template(self) -> sp.Expr:
        """The expression with every parameter symbolic (fixed ones too)."""
        return self._template

    def fix(self, **values: float) -> Activation:
        """A copy with more parameters fixed (``values`` by parameter name)."""
        merged = {**self.values, **values}
        return Activation(self._template, name=self.name, values=merged)

    def affine(self, input_scale: float = 1.0, input_shift: float = 0.0,
               output_shift: float = 0.0, output_scale: float = 1.0) -> Activation:
        """``output_scale * (phi(input_scale * x + input_shift) + output_shift)``.

        The result shares this activation's compiled kernels (no new compilation): maps and
        solvers pass the four numbers to the kernels. Composes with an existing transform.

        Example:
            >>> activation("tanh").affine(2.0, 0.5, -0.1, 3.0).expr
            3*tanh(2*x + 0.5) - 0.3
        """
        self._require_fixed("a transformed activation")
        params = [v if isinstance(v, mpmath.mpf) else float(v)
                  for v in (input_scale, input_shift, output_shift, output_scale)]
        for key, v in zip(("input_scale", "input_shift", "output_shift", "output_scale"), params):
            if not math.isfinite(float(v)):
                raise ActivationError(f"{key} must be finite, got {v!r}")
        a2, b2, d2, g2 = params
        if a2 == 0.0 or g2 == 0.0:
            raise ActivationError(
                f"input_scale and output_scale must be nonzero, got {a2!r} and {g2!r}")
        a1, b1, d1, g1 = self.affine_params
        combined = (a1 * a2, a1 * b2 + b1, d1 + d2 / g1, g1 * g2)
        return Activation._affine_of(self.base, combined)

    @property
    def is_affine(self) -> bool:
        """True for a transformed activation ``g * (base(a x + b) + d)`` of another one."""
        return self.base is not self

    def __repr__(self):
        label = f"{self.name}: " if self.name else ""
        free = f", free={list(self.free)}" if self.free else ""
        return f"Activation({label}{sp.sstr(self.expr)}{free})"

    def _repr_latex_(self):
        return f"$\\phi(x) = {sp.latex(self.expr)}$"

    def __eq__(self, other):
        return isinstance(other, Activation) and sp.srepr(self.expr) == sp.srepr(other.expr)

    def __hash__(self):
        return hash(sp.srepr(self.expr))

    def _require_fixed(self, what="this"):
        if self.free:
            hint = ", ".join(f"{n}=..." for n in self.free)
            raise FreeParameterError(
                f"{what} needs every parameter fixed, but {list(self.free)} "
                f"{'is' if len(self.free) == 1 else 'are'} free; fix with .fix({hint}) or "
                f"activation(..., {hint})")

    # -- structure (see kernelshape._structure) ----------------------------------------------
    @functools.cached_property
    def _layout(self):
        """(branches, pieces before merging, kinks, removable poles) of a base activation."""
        self._require_fixed("locating kinks")
        st = _structure.analyse(self.expr)
        branches = list(st.branches)
        mp_source = list(st.branches)
        floats = st.floats
        edges = (-math.inf, *floats, math.inf)
        raw, removable, poles = [], {}, []
        for i, k in enumerate(st.interval_branch):
            lo, hi = edges[i], edges[i + 1]
            points, singular = _structure.poles(st.branches[k], lo, hi)
            poles.extend(singular)  # reported by _check_real, after its complex test
            for point in points:
                # a removable pole (sin(x)/x at 0): phi is its limit there; float code
                # evaluates a Taylor polynomial around it (no 0/0, no cancellation)
                poly, width = _structure.removable_patch(st.branches[k], point)
                at = float(point)
                removable[at] = (st.branches[k], point)
                branches.append(poly)
                mp_source.append(st.branches[k])
                patch_lo, patch_hi = max(lo, at - width), min(hi, at + width)
                raw.append(Piece(lo, patch_lo, k))
                raw.append(Piece(patch_lo, patch_hi, len(branches) - 1))
                lo = patch_hi
            raw.append(Piece(lo, hi, k))
        raw = [p for p in raw if p.lo < p.hi]
        kinks = []
        for j, point in enumerate(st.points):
            left, right = st.interval_branch[j], st.interval_branch[j + 1]
            if left == right:
                continue
            order, jumps = _structure.classify(st.branches[left], st.branches[right], point)
            if order is not None:
                kinks.append(Kink(floats[j], order, jumps))
        return (tuple(branches), tuple(mp_source), tuple(raw), tuple(kinks), removable, floats,
                tuple(poles))

    @functools.cached_property
    def branches(self) -> tuple[sp.Expr, ...]:
        """The distinct analytic branch expressions, one per piece kind (one if smooth).

        Around a removable pole (``sin(x)/x`` at 0) the branch is a Taylor polynomial.
        """
        if self.is_affine:
            a, b, d, g = (_exact(v) for v in self.affine_params)
            return tuple(g * (e.subs(X, a * X + b) + d) for e in self.base.branches)
        return self._layout[0]

    @functools.cached_property
    def breakpoints(self) -> tuple[float, ...]:
        """Sorted x values where an ``Abs``/``Max``/``Min``/``sign``/``Heaviside``/
        ``Piecewise`` switches (kink or jump candidates)."""
        self._require_fixed("locating kinks")
        if self.is_affine:
            a, b = self.affine_params[:2]
            return tuple(sorted((k - b) / a for k in self.base.breakpoints))
        return self._layout[5]

    @functools.cached_property
    def pieces(self) -> tuple[Piece, ...]:
        """Intervals between breakpoints, each with the branch that holds there."""
        if self.is_affine:
            a, b = self.affine_params[:2]
            mapped = [Piece(*sorted(((p.lo - b) / a, (p.hi - b) / a)), p.branch)
                      for p in self.base.pieces]
            return tuple(sorted(mapped, key=lambda p: p.lo))
        raw = self._layout[2]
        merged = [raw[0]]
        for piece in raw[1:]:
            if piece.branch == merged[-1].branch:  # analytic across: no kink there
                merged[-1] = Piece(merged[-1].lo, piece.hi, piece.branch)
            else:
                merged.append(piece)
        return tuple(merged)

    @functools.cached_property
    def _raw_kinks(self) -> tuple[Kink, ...]:
        if self.is_affine:
            a, b, _, g = self.affine_params
            sgn = 1.0 if a > 0 else -1.0
            return tuple(sorted(
                (Kink((k.location - b) / a, k.order,
                      tuple(sgn * g * a**n * j for n, j in enumerate(k.jumps)))
                 for k in self.base.kinks), key=lambda k: k.location))
        return self._layout[3]

    @property
    def kinks(self) -> tuple[Kink, ...]:
        """Points where phi, phi', phi'' or phi''' jump, located symbolically.

        Example:
            >>> [(k.location, k.order) for k in activation("relu").kinks]
            [(0.0, 1)]
        """
        self._require_fixed("locating kinks")
        return self._raw_kinks

    @property
    def smooth(self) -> bool:
        """True when phi has no kink up to the third derivative."""
        return not self.kinks

    # -- numeric evaluation --------------------------------------------------------------
    @functools.cached_property
    def jit(self):
        """The numba module of the *base* activation's branches (see :mod:`kernelshape._jit`).

        Kernels work in base coordinates: pass them ``_piece_arrays`` (the base pieces) and
        fold ``affine_params`` into their arguments (as :mod:`kernelshape.maps.fast` does).
        """
        self._require_fixed("numeric evaluation")
        if self.is_affine:
            return self.base.jit
        from ._jit import jit_module
        return jit_module(self.branches)

    @functools.cached_property
    def _piece_arrays(self):
        """Base pieces as arrays (lo, hi, branch) for the kernels."""
        if self.is_affine:
            return self.base._piece_arrays
        lo = np.array([p.lo for p in self.pieces], dtype=np.float64)
        hi = np.array([p.hi for p in self.pieces], dtype=np.float64)
        br = np.array([p.branch for p in self.pieces], dtype=np.int64)
        return lo, hi, br

    def __call__(self, x, order: int = 0):
        """phi (or its ``order``-th derivative away from kinks) in float64, vectorized."""
        if order not in (0, 1, 2):
            from .errors import DomainError
            raise DomainError(f"order must be 0, 1 or 2, got {order!r}")
        arr = np.asarray(x, dtype=np.float64)
        a, b, d, g = self.affine_params
        lo, hi, br = self._piece_arrays
        out = self.jit.evaluate(a * arr.ravel() + b, order, lo, hi, br).reshape(arr.shape)
        out = g * a**order * out + (g * d if order == 0 else 0.0)
        return out if arr.ndim else float(out)

    def _mp_branch(self, branch: int, order: int):
        # the exact branch formula (not the Taylor patch of a removable pole), with an exp
        # that refuses arguments whose result could not be held in memory; built per
        # derivative order on first use (phi'' of 20 nested tanh takes seconds to print)
        cache = self.__dict__.setdefault("_mp_cache", {})
        fn = cache.get((branch, order))
        if fn is None:
            expr = sp.diff(self._layout[1][branch], X, order)
            fn = cache[branch, order] = sp.lambdify(X, expr, modules=[_MP_GUARDED, "mpmath"])
        return fn

    def mp(self, x, order: int = 0):
        """phi (or a derivative, away from kinks) in mpmath at the current precision."""
        self._require_fixed("mpmath evaluation")
        x = mpmath.mpf(x)
        if self.is_affine:
            a, b, d, g = (mpmath.mpf(v) for v in self.affine_params)
            return g * a**order * self.base.mp(a * x + b, order) + (g * d if order == 0 else 0)
        removable = self._layout[4].get(float(x))
        if removable is not None and x == mpmath.mpf(float(x)):
            branch, point = removable
            return _mp_limit(branch, order, point)
        for piece in self.pieces:
            if piece.lo <= x <= piece.hi:
                try:
                    return self._mp_branch(piece.branch, order)(x)
                except (MemoryError, OverflowError) as err:
                    raise MagnitudeError(
                        f"phi(x) = {self.expr} is too large to evaluate at x = "
                        f"{mpmath.nstr(x, 8)}: {err or type(err).__name__}") from err
        raise ExpressionError(f"no piece of {self.expr} holds at x = {x}")

    @functools.cached_property
    def growth(self) -> float:
        """Exponential growth rate g with ``|phi(x)| <~ exp(g |x|)`` far out (0 if polynomial)."""
        rate = 0.0
        with mpmath.workdps(30):
            for sgn in (-1, 1):
                v1, v2 = (abs(self.mp(sgn * r)) for r in (40, 80))
                if v1 > 0 and v2 > 0:
                    rate = max(rate, float(mpmath.log(v2 / v1) / 40))
        return max(0.0, rate - 0.05) if rate < 0.1 else rate

    def check_moment(self, scale: float = 1.0) -> None:
        """Raise InfiniteMomentError unless E[phi(scale z)^2] is finite (growth test)."""
        with mpmath.workdps(30):
            for sgn in (-1, 1):
                logs = []
                for z in (30.0, 60.0, 120.0):
                    v = abs(self.mp(sgn * scale * z))
                    logs.append(2 * float(mpmath.log(v)) if v > 0 else -math.inf)
                expo = [lv - z * z / 2 for lv, z in zip(logs, (30.0, 60.0, 120.0))]
                if not (expo[2] < expo[1] < -20 or logs[2] == -math.inf):
                    raise InfiniteMomentError(
                        f"E[phi(sqrt(q) z)^2] is infinite or too large for phi = {self.expr} "
                        f"at sqrt(q) = {scale:g}: phi(x)^2 does not decay against the "
                        f"Gaussian (log phi^2 - z^2/2 = {expo[1]:.3g} at z = 60)")

    def _check_real(self):
        if self.expr.has(sp.I) or self.expr.has(sp.zoo, sp.oo, sp.nan):
            raise NotRealError(f"{self.expr} is not a real-valued function of a real x")
        try:
            pieces = self.pieces
        except KernelShapeError:
            raise
        except (TypeError, ValueError) as err:
            raise NotRealError(f"cannot evaluate {self.expr} on the real line: {err}") from err
        points = [-37.3, -5.1, -1.7, -0.31, 0.29, 1.3, 4.7, 33.1]
        points += [p.hi - 1e-3 for p in pieces if math.isfinite(p.hi)]
        points += [p.lo + 1e-3 for p in pieces if math.isfinite(p.lo)]
        with mpmath.workdps(25):
            for x0 in points:
                try:
                    val = self.mp(x0)
                except MagnitudeError:
                    raise
                except (ZeroDivisionError, ValueError, OverflowError) as err:
                    raise NotRealError(f"{self.expr} is undefined at x = {x0}: {err}") from err
                if isinstance(val, mpmath.mpc) and abs(val.imag) > 1e-20 * max(1, abs(val)):
                    raise NotRealError(
                        f"{self.expr} is complex at x = {x0} (value {mpmath.nstr(val, 6)}); "
                        "activations must be real on the whole real line")
                if not mpmath.isfinite(val):
                    raise NotRealError(f"{self.expr} is not finite at x = {x0}")
        poles = self._layout[6]
        if poles:
            raise NotRealError(
                f"{self.expr} is not finite on the whole real line: it is singular at "
                f"x = {', '.join(poles[:5])}")

    # -- maps (delegated) ----------------------------------------------------------------
    def q_map(self, q, order: int = 0, *, digits: int | None = None):
        """Q map (order 0), Q' or Q'' at ``q > 0``; see :func:`kernelshape.maps.q_map`."""
        from .maps import q_map
        return q_map(self, q, order=order, digits=digits)

    def c_map(self, c, q=1.0, order: int = 0, *, q2=None, digits: int | None = None):
        """C map (order 0), C' or C'' at ``c`` in [-1, 1]; see :func:`kernelshape.maps.c_map`.

        ``q2`` (float64, order 0) gives the C map of two inputs at second moments ``q`` and
        ``q2``.
        """
        return (_MAPS or _load_maps()).c_map(self, c, q=q, q2=q2, order=order, digits=digits)

    def q_map_expr(self, order: int = 0):
        """Exact sympy Q map (in the symbol ``q``), or None when no closed form is known."""
        from .maps import q_map_expr
        return q_map_expr(self, order=order)

    def c_map_expr(self, order: int = 0, *, q=1):
        """Exact sympy C map (in the symbol ``c``) at input ``q``, or None."""
        from .maps import c_map_expr
        return c_map_expr(self, order=order, q=q)


#: kernelshape.maps, imported on the first map call (it imports this module). Kept here so
#: that a call on a few values does not pay the import statement's lookup (~1 us) each time.
_MAPS = None


def _load_maps():
    global _MAPS
    from . import maps
    _MAPS = maps
    return maps


#: mpmath's exp refuses nothing: exp of a number with a binary exponent of 2^40 asks for a
#: terabyte-long integer (MemoryError after minutes of trying). Values beyond
#: exp(2^(2^24)) are refused at once.
_MP_EXP_LIMIT = 2**24


def _guard(fn, name):
    def guarded(u):
        if mpmath.mag(u) > _MP_EXP_LIMIT:
            raise MagnitudeError(f"{name} of a number about 2^{int(mpmath.mag(u))} is too "
                                 "large to evaluate")
        return fn(u)
    return guarded


_MP_GUARDED = {name: _guard(getattr(mpmath, name), name) for name in ("exp", "sinh", "cosh")}


@functools.lru_cache(maxsize=64)
def _mp_limit_expr(branch, order, point):
    return sp.limit(sp.diff(branch, X, order), X, point)


def _mp_limit(branch, order, point):
    """phi^(order) at a removable pole: the exact limit, at the current precision."""
    return mpmath.mpf(sp.N(_mp_limit_expr(branch, order, point), mpmath.mp.dps + 5))


def _exact(v):
    """Numbers as sympy numbers: floats keep their binary value, mpf numbers their precision."""
    if isinstance(v, sp.Basic):
        return v
    if isinstance(v, (int, np.integer)):
        return sp.Integer(int(v))
    if isinstance(v, mpmath.mpf):
        return sp.Float(v, max(15, mpmath.mp.dps))
    f = float(v)
    return sp.Integer(int(f)) if f.is_integer() and abs(f) < 2**53 else sp.Float(f)


def _check_value(name, value):
    if isinstance(value, sp.Basic) and value.is_number:
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ActivationError(f"parameter {name} must be a real number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ActivationError(f"parameter {name} must be finite, got {value!r}")
    return value


def activation(spec, *, parameters=(), name: str | None = None, **values) -> Activation:
    """Make an activation from a built-in name, expression text or a sympy expression.

    Args:
        spec: a name from :func:`builtins`, expression text in ``x`` (parsed safely, see
            :mod:`kernelshape.parsing`; built-in names work as functions there, e.g.
            ``"swish(2*x) - 1"``), a sympy expression, or an :class:`Activation`.
        parameters: names of parameters in expression text besides ``x`` (left free unless
            given a value in ``values``).
        name: a label for display.
        **values: parameter values by name, e.g. ``negative_slope=0.2``. ``None`` frees a
            parameter that has a default.

    Returns:
        An :class:`Activation`, read-only and shared: the same input (name or text or
        sympy expression, parameters, label, values) gives the same object, so its
        analysis and compiled kernels are reused (the 512 most recent inputs are kept).

    Raises:
        ActivationError: unknown built-in parameter or bad value.
        ExpressionError: unparsable, unsafe or ambiguous expressions, or expressions past
            a work limit (nesting, derivative size, breakpoints; see
            :mod:`kernelshape._structure`).
        UnknownNameError: an unknown name; ``err.suggestions`` holds the closest known
            names (``"tahn"`` -> ``("tanh", "tan")``).
        MagnitudeError: a constant beyond float64's range.

    Example:
        >>> activation("leaky_relu", negative_slope=0.2)
        Activation(leaky_relu: Piecewise((0.2*x, x < 0), (x, True)))
        >>> activation("leaky_relu").free
        ('negative_slope',)
    """
    if isinstance(spec, Activation):
        return spec.fix(**values) if values else spec
    if isinstance(parameters, (list, tuple)):
        parameters = tuple(parameters)
    key = activation_key(spec, parameters, name, values)
    return _MEMO.get(key, lambda: _build(spec, parameters, name, values))


#: One Activation per canonical input (name or text or sympy expression, parameter names,
#: label, values with their types): the sympy analysis runs once per process and input.
_MEMO = Memo(512)


def _build(spec, parameters, name, values) -> Activation:
    if isinstance(spec, str) and spec in _BUILTINS:
        build, defaults = _BUILTINS[spec]
        unknown = set(values) - set(defaults)
        if unknown or parameters:
            raise ActivationError(
                f"built-in {spec!r} has parameters {sorted(defaults) or 'none'}, "
                f"got {sorted(unknown) or list(parameters)}")
        merged = {k: v for k, v in {**defaults, **values}.items() if v is not None}
        expr = build(*[_sym(p) for p in defaults])
        return Activation(expr, name=name or spec, values=merged)
    if isinstance(spec, str):
        declared = set(parameters) | set(values)
        for p in declared:
            if not (isinstance(p, str) and p.isidentifier()) or p == X.name:
                raise ExpressionError(f"bad parameter name {p!r}")
        try:
            expr = parse_expression(spec, declared)
        except UnknownNameError as err:
            if spec.strip() != err.name:
                raise
            # a lone unknown name is most likely a misspelt built-in
            suggestions = suggest(spec.strip(), _BUILTINS) or err.suggestions
            hint = f"; did you mean {' or '.join(suggestions)}?" if suggestions else ""
            raise UnknownNameError(
                f"unknown activation {spec.strip()!r}{hint} Built-ins: "
                f"{', '.join(_BUILTINS)}; or give an expression in x",
                name=err.name, suggestions=suggestions) from None
        unknown_values = set(values) - {s.name for s in expr.free_symbols}
        if unknown_values:
            raise ActivationError(
                f"parameters {sorted(unknown_values)} do not appear in {spec!r}")
        return Activation(expr, name=name,
                          values={k: v for k, v in values.items() if v is not None})
    if isinstance(spec, sp.Basic):
        expr = sp.sympify(spec)
        if not isinstance(expr, sp.Expr):
            raise ExpressionError(f"expected a sympy expression, got {type(expr).__name__}")
        symbols = sorted(expr.free_symbols, key=lambda s: s.name)
        names = [s.name for s in symbols]
        if X.name not in names:
            if len(symbols) != 1:
                raise ExpressionError(
                    f"cannot tell the variable of {expr}: it has free symbols {names}; "
                    "name the variable x (other symbols become parameters)")
            expr = expr.subs(symbols[0], X)
        else:
            expr = expr.subs({s: sp.Symbol(s.name, real=True) for s in symbols})
        if not parameters and len(names) > 1 and set(names) - {X.name} - set(values):
            pass  # extra symbols are free parameters
        return Activation(expr, name=name,
                          values={k: v for k, v in values.items() if v is not None})
    raise ExpressionError(
        f"expected a built-in name, expression text or sympy expression, got "
        f"{type(spec).__name__}")
