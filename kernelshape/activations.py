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

from .errors import (
    ActivationError,
    ExpressionError,
    FreeParameterError,
    InfiniteMomentError,
    NotRealError,
    UnsupportedError,
)
from .parsing import X, as_sympy, parse_expression

__all__ = ["Activation", "Kink", "activation", "builtins", "BUILTIN_FORMULAS"]

_SELU_LAMBDA = sp.Float("1.0507009873554804934193349852946", 40)
_SELU_ALPHA = sp.Float("1.6732632423543772848170429916717", 40)


def _sym(name):
    return sp.Symbol(name, real=True)


def _elu(alpha, scale=1):
    return scale * sp.Piecewise((alpha * (sp.exp(X) - 1), X < 0), (X, True))


# name -> (expression builder taking parameter symbols, {parameter: default or None=free})
_BUILTINS = {
    "tanh": (lambda: sp.tanh(X), {}),
    "softplus": (lambda: sp.log(1 + sp.exp(X)), {}),
    "relu": (lambda: sp.Max(0, X), {}),
    "leaky_relu": (
        lambda negative_slope: sp.Piecewise((negative_slope * X, X < 0), (X, True)),
        {"negative_slope": None}),
    "selu": (lambda: _elu(_SELU_ALPHA, _SELU_LAMBDA), {}),
    "elu": (lambda alpha: _elu(alpha), {"alpha": 1}),
    "swish": (lambda: X / (1 + sp.exp(-X)), {}),
    "sigmoid": (lambda: 1 / (1 + sp.exp(-X)), {}),
    "erf": (lambda: sp.erf(X), {}),
    "bentid": (lambda: (sp.sqrt(X**2 + 1) - 1) / 2 + X, {}),
    "atan": (lambda: sp.atan(X), {}),
    "asinh": (lambda: sp.asinh(X), {}),
    "square": (lambda: X**2, {}),
    "softsign": (lambda: X / (1 + sp.Abs(X)), {}),
    "gelu": (lambda: X * (1 + sp.tanh(sp.sqrt(2 / sp.pi)
                                      * (X + sp.Rational(44715, 10**6) * X**3))) / 2, {}),
    "gelu_exact": (lambda: X * (1 + sp.erf(X / sp.sqrt(2))) / 2, {}),
    "mish": (lambda: X * sp.tanh(sp.log(1 + sp.exp(X))), {}),
    "sin": (lambda: sp.sin(X), {}),
    "cos": (lambda: sp.cos(X), {}),
    "gaussian": (lambda: sp.exp(-X**2 / 2), {}),
    "identity": (lambda: X, {}),
}

#: The 16 activation names of the ``dks`` package (same definitions).
DKS_NAMES = ("tanh", "softplus", "relu", "leaky_relu", "selu", "elu", "swish", "sigmoid",
             "erf", "bentid", "atan", "asinh", "square", "softsign", "gelu", "gelu_exact")



@functools.lru_cache(maxsize=None)
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
        self.values = {k: _check_value(k, v) for k, v in values.items()}
        self.name = name
        self.expr = expr.subs({self._symbols[k]: _exact(v) for k, v in self.values.items()})
        self.base = self
        self.affine_params = (1.0, 0.0, 0.0, 1.0)
        if not self.free:
            self._check_real()

    @classmethod
    def _affine_of(cls, base: Activation, params) -> Activation:
        """``g * (base(a x + b) + d)`` sharing the base's pieces and compiled kernels."""
        a, b, d, g = params
        new = cls.__new__(cls)
        new._symbols = {}
        new.values = {}
        new.name = None
        a_, b_, d_, g_ = (_exact(v) for v in params)
        new.expr = g_ * (base.expr.subs(X, a_ * X + b_) + d_)
        new._template = new.expr
        new.base = base
        new.affine_params = (a, b, d, g)
        return new

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

    # -- structure -----------------------------------------------------------------------
    @functools.cached_property
    def _folded(self) -> sp.Expr:
        rewritten = self.expr.rewrite(sp.Piecewise)
        return sp.piecewise_fold(rewritten)

    @functools.cached_property
    def branches(self) -> tuple[sp.Expr, ...]:
        """The analytic branch expressions of the folded piecewise form (one if smooth)."""
        if self.is_affine:
            a, b, d, g = (_exact(v) for v in self.affine_params)
            return tuple(g * (e.subs(X, a * X + b) + d) for e in self.base.branches)
        folded = self._folded
        if isinstance(folded, sp.Piecewise):
            return tuple(e for e, _ in folded.args)
        if folded.has(sp.Piecewise):
            raise UnsupportedError(f"cannot split {self.expr} into analytic pieces")
        return (folded,)

    @functools.cached_property
    def _conditions(self):
        folded = self._folded
        if isinstance(folded, sp.Piecewise):
            return tuple(c for _, c in folded.args)
        return (sp.true,)

    @functools.cached_property
    def breakpoints(self) -> tuple[float, ...]:
        """Sorted x values where the branch changes (kink or jump candidates)."""
        self._require_fixed("locating kinks")
        if self.is_affine:
            a, b = self.affine_params[:2]
            return tuple(sorted((k - b) / a for k in self.base.breakpoints))
        points = set()
        for rel in set().union(*(c.atoms(sp.Rel) for c in self._conditions)):
            if isinstance(rel, (sp.Eq, sp.Ne)):
                continue
            sol = sp.solveset(rel.lhs - rel.rhs, X, sp.S.Reals)
            if not isinstance(sol, sp.FiniteSet):
                raise UnsupportedError(
                    f"the condition {rel} in {self.expr} has no finite set of boundary "
                    f"points (got {sol}); only finitely many kinks are supported")
            points.update(float(v) for v in sol)
        return tuple(sorted(points))

    @functools.cached_property
    def pieces(self) -> tuple[Piece, ...]:
        """Intervals between breakpoints, each with the branch that holds there."""
        if self.is_affine:
            a, b = self.affine_params[:2]
            mapped = [Piece(*sorted(((p.lo - b) / a, (p.hi - b) / a)), p.branch)
                      for p in self.base.pieces]
            return tuple(sorted(mapped, key=lambda p: p.lo))
        edges = (-math.inf, *self.breakpoints, math.inf)
        out = []
        for lo, hi in zip(edges[:-1], edges[1:]):
            mid = _midpoint(lo, hi)
            out.append(Piece(lo, hi, self._branch_at(mid)))
        merged = [out[0]]
        for piece in out[1:]:
            if piece.branch == merged[-1].branch and not self._is_kink(piece.lo):
                merged[-1] = Piece(merged[-1].lo, piece.hi, piece.branch)
            else:
                merged.append(piece)
        return tuple(merged)

    def _branch_at(self, x0: float) -> int:
        xv = sp.Rational(x0) if math.isfinite(x0) else x0
        for i, cond in enumerate(self._conditions):
            truth = cond.subs(X, xv)
            if truth == sp.true:
                return i
            if truth != sp.false:
                raise UnsupportedError(f"cannot decide the condition {cond} at x = {x0}")
        raise ExpressionError(f"{self.expr} is undefined at x = {x0} (no branch holds)")

    def _is_kink(self, x0):
        return any(k.location == x0 for k in self._raw_kinks)

    @functools.cached_property
    def _raw_kinks(self) -> tuple[Kink, ...]:
        if self.is_affine:
            a, b, _, g = self.affine_params
            sgn = 1.0 if a > 0 else -1.0
            return tuple(sorted(
                (Kink((k.location - b) / a, k.order,
                      tuple(sgn * g * a**n * j for n, j in enumerate(k.jumps)))
                 for k in self.base.kinks), key=lambda k: k.location))
        out = []
        edges = (-math.inf, *self.breakpoints, math.inf)
        for i, b in enumerate(self.breakpoints):
            left = self._branch_at(_midpoint(edges[i], b))
            right = self._branch_at(_midpoint(b, edges[i + 2]))
            jumps = []
            order = None
            for d in range(4):
                lv = _limit_value(self.branches[left], d, b)
                rv = _limit_value(self.branches[right], d, b)
                jump = rv - lv
                significant = abs(jump) > 1e-25 * max(1.0, abs(lv), abs(rv))
                if d < 3:
                    jumps.append(float(jump) if significant else 0.0)
                if order is None and significant:
                    order = d
            if order is not None:
                out.append(Kink(b, order, tuple(jumps)))
        return tuple(out)

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

    @functools.cached_property
    def _mp_branches(self):
        return tuple(
            tuple(sp.lambdify(X, sp.diff(b, X, d), modules="mpmath") for d in range(3))
            for b in self.branches)

    def mp(self, x, order: int = 0):
        """phi (or a derivative, away from kinks) in mpmath at the current precision."""
        self._require_fixed("mpmath evaluation")
        x = mpmath.mpf(x)
        if self.is_affine:
            a, b, d, g = (mpmath.mpf(v) for v in self.affine_params)
            return g * a**order * self.base.mp(a * x + b, order) + (g * d if order == 0 else 0)
        for piece in self.pieces:
            if piece.lo <= x <= piece.hi:
                return self._mp_branches[piece.branch][order](x)
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
        except (TypeError, ValueError) as err:
            raise NotRealError(f"cannot evaluate {self.expr} on the real line: {err}") from err
        points = [-37.3, -5.1, -1.7, -0.31, 0.29, 1.3, 4.7, 33.1]
        points += [p.hi - 1e-3 for p in pieces if math.isfinite(p.hi)]
        points += [p.lo + 1e-3 for p in pieces if math.isfinite(p.lo)]
        with mpmath.workdps(25):
            for x0 in points:
                try:
                    val = self.mp(x0)
                except (ZeroDivisionError, ValueError, OverflowError) as err:
                    raise NotRealError(f"{self.expr} is undefined at x = {x0}: {err}") from err
                if isinstance(val, mpmath.mpc) and abs(val.imag) > 1e-20 * max(1, abs(val)):
                    raise NotRealError(
                        f"{self.expr} is complex at x = {x0} (value {mpmath.nstr(val, 6)}); "
                        "activations must be real on the whole real line")
                if not mpmath.isfinite(val):
                    raise NotRealError(f"{self.expr} is not finite at x = {x0}")
        for piece in pieces:
            try:
                sing = sp.singularities(self.branches[piece.branch], X, sp.S.Reals)
                inside = sing.intersect(sp.Interval(piece.lo, piece.hi))
            except (NotImplementedError, ValueError, TypeError):
                continue
            if inside != sp.S.EmptySet:
                raise NotRealError(
                    f"{self.expr} is not finite on the whole real line: it is singular at "
                    f"x in {inside}")

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
        from .maps import c_map
        return c_map(self, c, q=q, q2=q2, order=order, digits=digits)

    def q_map_expr(self, order: int = 0):
        """Exact sympy Q map (in the symbol ``q``), or None when no closed form is known."""
        from .maps import q_map_expr
        return q_map_expr(self, order=order)

    def c_map_expr(self, order: int = 0, *, q=1):
        """Exact sympy C map (in the symbol ``c``) at input ``q``, or None."""
        from .maps import c_map_expr
        return c_map_expr(self, order=order, q=q)


def _midpoint(lo, hi):
    if math.isinf(lo) and math.isinf(hi):
        return 0.0
    if math.isinf(lo):
        return hi - 1.0
    if math.isinf(hi):
        return lo + 1.0
    return (lo + hi) / 2


def _limit_value(expr, order, x0):
    with mpmath.workdps(40):
        value = sp.diff(expr, X, order).evalf(40, subs={X: sp.Float(x0, 40)})
    if not value.is_real:
        raise NotRealError(f"{expr} is not real at x = {x0}")
    return sp.Float(value, 40)


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
            :mod:`kernelshape.parsing`), a sympy expression, or an :class:`Activation`.
        parameters: names of parameters in expression text besides ``x`` (left free unless
            given a value in ``values``).
        name: a label for display.
        **values: parameter values by name, e.g. ``negative_slope=0.2``. ``None`` frees a
            parameter that has a default.

    Returns:
        An :class:`Activation`.

    Raises:
        ActivationError: unknown built-in parameter or bad value.
        ExpressionError: unparsable, unsafe or ambiguous expressions.

    Example:
        >>> activation("leaky_relu", negative_slope=0.2)
        Activation(leaky_relu: Piecewise((0.2*x, x < 0), (x, True)))
        >>> activation("leaky_relu").free
        ('negative_slope',)
    """
    if isinstance(spec, Activation):
        return spec.fix(**values) if values else spec
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
        expr = parse_expression(spec, declared)
        if spec.isidentifier() and expr == X:
            pass
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
