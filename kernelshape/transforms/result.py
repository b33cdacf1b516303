"""The result of a DKS / TAT solve: parameters, the transformed activation, residuals.

:class:`Transform` is a small frozen record. ``params`` uses the ``dks`` package's key names
(``input_scale``, ``input_shift``, ``output_shift``, ``output_scale`` and, for the leaky ReLU
family, ``negative_slope``), so ``phi_hat(x) = output_scale * (phi(input_scale * x +
input_shift) + output_shift)``. It round-trips through JSON with :meth:`Transform.to_dict`
and :meth:`Transform.from_dict`; the base activation is stored as text (``expr``, sympy's
printed form, for reading) and as ``srepr`` (every node spelled out, so floats and the tree
come back exactly), both re-read with the safe parsers of :mod:`kernelshape.parsing`, never
evaluated as Python. A ``digits=N`` transform stores every digit its numbers hold, as
decimal strings. Reading a document validates it against a schema and evaluates every
condition again (:mod:`kernelshape.transforms._document`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping

import sympy as sp

from ..activations import Activation

__all__ = ["PARAM_KEYS", "Residual", "Transform"]

#: Parameter keys in the order of the transform formula (``dks`` names).
PARAM_KEYS = ("input_scale", "input_shift", "output_shift", "output_scale")


@dataclasses.dataclass(frozen=True)
class Residual:
    """One condition of a transform: what was asked, what the solution achieves.

    Attributes:
        condition: e.g. ``"Q(1)"``, ``"Q'(1)"``, ``"C(0)"``, ``"C'(1)"``, ``"C''(1)"``,
            ``"M(0)"`` (the TAT leaky ReLU subnetwork value).
        target: the target value.
        achieved: the value the transformed activation attains (independently evaluated).

    Example:
        >>> Residual("Q(1)", 1.0, 1.0 + 2e-16).difference < 1e-15
        True
    """

    condition: str
    target: float
    achieved: float

    @property
    def difference(self) -> float:
        """``|achieved - target|``, subtracted exactly before rounding to a float: for
        mpmath values the difference keeps its size (1e-45 does not become 0 or 1e-16)."""
        a, t = self.achieved, self.target
        if hasattr(a, "_mpf_") or hasattr(t, "_mpf_"):
            # mpmath rounds the exact difference once (mpf(a) would round a first)
            return float(abs(a - t))
        return abs(float(a) - float(t))


@dataclasses.dataclass(frozen=True)
class Transform:
    """A solved DKS or TAT transform of one activation for one network.

    Attributes:
        method: ``"dks"`` or ``"tat"``.
        base: the activation before the transform, parameters fixed except those the
            method solved for (their values are in ``params``).
        params: ``dks``-named parameters (floats, or mpmath numbers when ``digits`` is set).
        targets: the targets the solve used, e.g. ``{"zeta": 1.5, "q_slope": 1.0,
            "xi": 1.0081}`` for DKS (``xi`` the local C'(1)), ``{"tau": 0.3, "tau_local": ...}``
            or ``{"eta": 0.9}`` for TAT.
        network: a readable description of the network the targets refer to.
        residuals: every condition with target and achieved value.
        digits: significant digits of the solve (``None`` = float64).

    Example:
        >>> import kernelshape as ks
        >>> t = ks.dks(ks.activation("tanh"), network=ks.mlp(10))
        >>> sorted(t.params)
        ['input_scale', 'input_shift', 'output_scale', 'output_shift']
        >>> ks.Transform.from_dict(t.to_dict()).params == t.params
        True
    """

    method: str
    base: Activation
    params: Mapping[str, float]
    targets: Mapping[str, float]
    network: str
    residuals: tuple[Residual, ...]
    digits: int | None = None

    @functools.cached_property
    def activation(self) -> Activation:
        """The transformed activation ``output_scale*(phi(input_scale*x+input_shift)+output_shift)``."""
        base = self.base
        if "negative_slope" in self.params and "negative_slope" in base.free:
            # Activation parameter values are float64 (a digits=N slope is rounded here).
            base = base.fix(negative_slope=float(self.params["negative_slope"]))
        p = {k: self.params.get(k, d) for k, d in zip(PARAM_KEYS, (1.0, 0.0, 0.0, 1.0))}
        return base.affine(*(p[k] for k in PARAM_KEYS))

    @property
    def max_residual(self) -> float:
        """Largest ``|achieved - target|`` over the conditions."""
        return max((r.difference for r in self.residuals), default=0.0)

    def __repr__(self):
        params = ", ".join(f"{k}={_fmt(v, self.digits)}" for k, v in self.params.items())
        targets = ", ".join(f"{k}={_fmt(v, self.digits)}" for k, v in self.targets.items())
        name = self.base.name or sp.sstr(self.base.expr)
        prec = f"{self.digits} digits" if self.digits else "float64"
        return (f"Transform({self.method}: {name} on {self.network}; {targets}; {params}; "
                f"max residual {self.max_residual:.2e}, {prec})")

    def _repr_html_(self):
        d = self.digits
        rows = "".join(f"<tr><td>{_html(k)}</td><td>{_fmt(v, d)}</td></tr>"
                       for k, v in self.params.items())
        res = "".join(
            f"<tr><td>{_html(r.condition)}</td><td>{_fmt(r.target, d)}</td>"
            f"<td>{_fmt(r.achieved, d)}</td>"
            f"<td>{r.difference:.2e}</td></tr>" for r in self.residuals)
        name = _html(self.base.name or sp.sstr(self.base.expr))
        prec = f"{self.digits} digits" if self.digits else "float64"
        return (f"<p><b>{_html(str(self.method).upper())}</b> transform of <code>{name}</code> "
                f"on {_html(self.network)} ({prec})</p>"
                f"<table><tr><th>parameter</th><th>value</th></tr>"
                f"{rows}</table><table><tr><th>condition</th><th>target</th><th>achieved</th>"
                f"<th>|difference|</th></tr>{res}</table>")

    # -- JSON ----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """A JSON-safe dict: numbers as floats, or, when ``digits`` is set, mpmath numbers as
        decimal strings holding every digit (at least ``digits + 10`` significant digits,
        and enough for the value's binary digits: read at the value's precision, the
        string gives back the same number)."""
        enc = functools.partial(_encode, digits=self.digits) if self.digits else float
        return {
            "method": self.method,
            "base": {"expr": sp.sstr(self.base.template), "srepr": sp.srepr(self.base.template),
                     "name": self.base.name,
                     "parameters": list(self.base.parameters),
                     "values": {k: float(v) for k, v in self.base.values.items()}},
            "params": {k: enc(v) for k, v in self.params.items()},
            "targets": {k: enc(v) for k, v in self.targets.items()},
            "network": self.network,
            "residuals": [{"condition": r.condition, "target": enc(r.target),
                           "achieved": enc(r.achieved)} for r in self.residuals],
            "digits": self.digits,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Transform:
        """Inverse of :meth:`to_dict`, for documents from anywhere (JSON is input).

        The document is validated against a schema (required and known keys, types,
        finite numbers of bounded size, the method's parameter and target keys); the
        expression is re-read with the safe parsers, never evaluated. Every condition is
        evaluated again from the stored parameters; the stored residuals must agree with
        that, and the result carries the re-evaluated ones. ``digits`` is the smaller of
        the stored ``digits`` and the significant digits the parameter strings hold.

        Raises:
            DocumentError: (a TransformError) naming the key that is wrong.
        """
        # _document re-evaluates residuals with the solvers' routines, which import this
        # module: imported here, so the module-level imports stay one-way.
        from ._document import read_document
        return read_document(cls, data)


def _encode(v, digits):
    import mpmath
    if isinstance(v, mpmath.mpf):
        bits = max(v._mpf_[3], 53)   # the mantissa's bit count
        n = max(digits + 10, mpmath.libmp.repr_dps(bits))
        # an exact zero shows as many digits as any other value (nstr writes "0.0")
        return "0." + "0" * n if v == 0 else mpmath.nstr(v, n, strip_zeros=False)
    return float(v)


def _fmt(v, digits=None):
    """Text of a value: an mpmath number with the ``digits`` it carries, else a float."""
    if digits and hasattr(v, "_mpf_"):
        import mpmath
        return mpmath.nstr(v, digits, strip_zeros=False)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return repr(f) if math.isfinite(f) else str(f)


def _html(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
