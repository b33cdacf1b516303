"""Read a JAX function's jaxpr as a kernelshape :class:`~kernelshape.networks.Network`.

The reader walks the flat instructions of :mod:`._flat` keeping one record per value
(:mod:`._records`). Rules are looked up per primitive in :data:`RULES` (structure) and in
:mod:`._elementwise` (activations), as ``jax.core.eval_jaxpr`` does; an equation that does
not fit is collected with its source line and the walk goes on, so one
:class:`~kernelshape.errors.ModelError` names every problem.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from .. import networks as _nets
from ..errors import KernelShapeError, ModelError
from ..networks._layers import _SKIP
from . import _elementwise as ew
from ._flat import Lit, scalar_of
from ._records import POISON, Const, Data, LNPart, Poison, Refuse, Stat, Step
from ._rules import RULES

#: How far the squared weights of a traced sum may be from 1 (float32 constants).
SUM_TOL = 1e-5


class Tracer:
    """State of one reading: records, problems, activation sites, sums, weight roles."""

    def __init__(self, leaf_names, shapes, *, shortcut_weight=None, conv_init="delta",
                 bind=None):
        self.leaf_names = leaf_names
        self.shapes = shapes            # id -> shape
        self.shortcut_weight = shortcut_weight
        self.conv_init = conv_init
        self.bind = bind                # activation key -> Activation bound in its place
        self.values = {}
        self.problems = []
        self.sites = {}                 # id -> (base id, gain, key, Activation, factor)
        self.sums = {}                  # id -> [(base id, gain, weight), ...]
        self.weights = {}               # leaf -> (kind, kernel axes, in axes, out axes)
        self.roles = {}                 # leaf -> "zeros" | "ones"
        self.scalings = []              # (where, gain) outside a normalized sum
        self.rows = []                  # steps in program order
        self.activations = {}           # key -> Activation (original)
        self.where_of = {}              # id -> source of the equation computing it
        self._uid = itertools.count()

    # -- records ------------------------------------------------------------------------
    def record(self, ref):
        if isinstance(ref, Lit):
            return Const(np.asarray(ref.value))
        return self.values[ref]

    def step(self, path, node, where, kind, out):
        s = Step(next(self._uid), node, where, kind, out)
        self.rows.append((s, path + (s,)))
        return path + (s,)

    def name(self, leaf):
        return self.leaf_names[leaf]

    # -- materializing ------------------------------------------------------------------
    def materialize(self, ref, where, *, split=False):
        """The value at ``ref`` as a network output: pending activation -> nonlinear layer,
        pending layer norm -> layer_norm; a constant gain stays in ``gain``. With ``split``
        (a sum's branch), a constant factor of the activation goes to the gain too."""
        rec = self.values[ref]
        if isinstance(rec, LNPart):
            if not (rec.centered and rec.scaled):
                raise Refuse("a statistic over the feature axis that is not a layer norm "
                             "(subtract the mean, multiply by rsqrt(variance + eps))")
            for leaf, role in rec.roles:
                self.roles[leaf] = role
            path = self.step(rec.inp.path, _nets.layer_norm(), where, "layer_norm", ref)
            new = Data(path, ew.X, ref, 1.0, rec.inp.keys)
        elif isinstance(rec, Stat):
            raise Refuse("a statistic over the feature axis used as data")
        elif not isinstance(rec, Data):
            raise Refuse("a parameter or constant used where data is expected")
        elif rec.base == ref and rec.plain:
            return rec
        else:
            coef = ew.linear_coefficient(rec.expr)
            if coef is not None:
                new = Data(rec.path, ew.X, ref, coef * rec.gain, rec.keys)
            else:
                factor = 1.0
                if split:
                    c, rest = rec.expr.as_coeff_Mul()
                    if c.is_number and c != 1 and not rest.is_number:
                        factor, rec = float(c), Data(rec.path, rest, rec.base, rec.gain,
                                                     rec.aliases)
                path = self._activation(rec, ref, where, factor)
                new = Data(path, ew.X, ref, factor, rec.keys)
        self.values[ref] = new
        return new

    def _activation(self, rec, ref, where, factor=1.0):
        import sympy as sp

        from ..activations import activation
        if isinstance(rec.expr, sp.logic.boolalg.Boolean):
            raise Refuse("a comparison used as data")
        expr = ew.simplify(rec.expr.subs(ew.X, sp.Float(rec.gain, 17) * ew.X)
                           if rec.gain != 1 else rec.expr)
        key = sp.srepr(expr)
        phi = self.activations.get(key)
        if phi is None:
            try:
                phi = activation(expr)
            except KernelShapeError as err:
                raise Refuse(f"the element-wise function {expr} is not an activation "
                             f"kernelshape can use: {err}") from None
            self.activations[key] = phi
        self.sites[ref] = (rec.base, rec.gain, key, phi, factor)
        bound = phi if self.bind is None else self.bind.get(key)
        return self.step(rec.path, _nets.nonlinear(bound), self.where_of.get(ref, where),
                         "nonlinear", ref)

    def layer_input(self, ref, where):
        """Materialize and take any leftover gain into a scaling layer."""
        rec = self.materialize(ref, where)
        if abs(abs(rec.gain) - 1.0) > 1e-6:
            self.scalings.append((where, rec.gain))
            path = self.step(rec.path, _nets.linear(sigma_w=abs(rec.gain)), where, "scale",
                             ref)
            rec = Data(path, ew.X, ref, math.copysign(1.0, rec.gain), rec.keys)
        return rec

    # -- sums and concatenations --------------------------------------------------------
    def combine(self, recs, weights, out, where, kind, fractions=None):
        """A normalized sum (or concatenation) of materialized records."""
        paths = [r.path for r in recs]
        k = _common(paths)
        # Branches that both hold layers share their input's activation: move the shared
        # weightless steps into each branch (as ks.resnet's projection branch has them).
        while k and all(len(p) > k for p in paths) and paths[0][k - 1].kind == "nonlinear":
            k -= 1
        branches = [_chain(p[k:]) for p in paths]
        if fractions is not None:
            node = _nets.parallel(branches, fractions)
        else:
            node = _nets.normalized_sum(branches, weights, normalize=True)
        self.sums[out] = [(r.base, r.gain, w) for r, w in zip(recs, weights, strict=True)] \
            if fractions is None else None
        path = self.step(paths[0][:k], node, where, kind, out)
        return Data(path, ew.X, out)


def _common(paths):
    k = 0
    for steps in zip(*paths, strict=False):
        if any(s.uid != steps[0].uid for s in steps):
            break
        k += 1
    return k


def _chain(steps):
    if not steps:
        return _SKIP
    return steps[0].node if len(steps) == 1 else _nets.chain(*[s.node for s in steps])


def sum_weights(tracer, recs, signs, where):
    """The branch weights of a sum of two records: the model's (normalized) or, with a
    shortcut weight, ``w`` for the branch with fewer nonlinear layers."""
    raw = [s * r.gain for r, s in zip(recs, signs, strict=True)]
    w = tracer.shortcut_weight
    if w is not None and len(recs) == 2:
        depth = [sum(1 for s in r.path if s.kind == "nonlinear") for r in recs]
        shortcut = 0 if depth[0] <= depth[1] else 1
        out = [math.sqrt(1.0 - w * w)] * 2
        out[shortcut] = float(w)
        return out
    total = sum(v * v for v in raw)
    if total == 0.0:
        raise Refuse("a sum of two branches both weighted by zero")
    if abs(total - 1.0) > SUM_TOL:
        # not poisoned: the structure is fine, so later sums are checked (and named) too
        shown = ", ".join(f"{v:.6g}" for v in raw)
        reason = (f"add: an unnormalized sum: branch weights {shown} have squares summing to "
                  f"{total:.6g}, not 1 (scale the branches, e.g. w * shortcut + "
                  "sqrt(1 - w**2) * branch, or pass shortcut_weight=)")
        tracer.problems.append((where, reason))
    return [v / math.sqrt(total) for v in raw]


def read(instrs, in_ids, outs, tracer):
    """Walk the instructions; returns the output's :class:`Data` (raises ModelError)."""
    from ._elementwise import rule as ew_rule
    from ._rules import elementwise
    for instr in instrs:
        ins = [tracer.record(r) for r in instr.ins]
        if any(isinstance(r, Poison) for r in ins):
            results = [POISON] * len(instr.outs)
        elif all(isinstance(r, Const) for r in ins):
            results = [Const(np.asarray(v)) for v in _evaluate(instr, ins)]
        else:
            fn = RULES.get(instr.name) or (elementwise if ew_rule(instr.name) else None)
            try:
                if fn is None:
                    raise Refuse(_unknown(instr.name))
                results = fn(tracer, instr, ins)
            except Refuse as err:
                tracer.problems.append((instr.where, f"{instr.name}: {err}"))
                results = [POISON] * len(instr.outs)
        tracer.values.update(zip(instr.outs, results, strict=True))
        tracer.where_of.update(dict.fromkeys(instr.outs, instr.where))
    data = [r for r in outs if not isinstance(r, Lit)
            and isinstance(tracer.values[r], (Data, LNPart, Poison))]
    if len(data) != 1:
        tracer.problems.append(("output", (f"the function must return one array computed from "
                                          f"the input, got {len(data)}")))
        return None
    if isinstance(tracer.values[data[0]], Poison):
        return None
    try:
        return tracer.layer_input(data[0], "output")
    except Refuse as err:
        tracer.problems.append(("output", str(err)))
        return None


def _evaluate(instr, ins):
    out = instr.prim.bind(*[r.value for r in ins], **instr.params)
    return out if instr.prim.multiple_results else [out]


def _unknown(name):
    if name in ("cond", "while", "scan", "switch"):
        return (f"control flow ({name}) is not supported: the network's structure must not "
                "depend on the data")
    if name in ("reduce_window_max", "reduce_max", "reduce_window_min", "reduce_min",
                "argmax", "argmin", "reduce_window"):
        return "max pooling / max reductions are not part of the theory (use average pooling)"
    return f"the primitive {name!r} is not supported by the kernel theory reader"


def raise_problems(tracer):
    if tracer.problems:
        lines = "\n".join(f"  - {where}: {reason}" for where, reason in tracer.problems)
        raise ModelError(f"the model does not fit the kernel theory ({len(tracer.problems)} "
                         f"problem(s)):\n{lines}", problems=list(tracer.problems))


def network_of(rec):
    return _nets.chain(*[s.node for s in rec.path])


def scalar(rec, what):
    """The one value of a uniform constant (``what`` names its use) or Refuse."""
    value = scalar_of(rec.value)
    if value is None:
        if rec.value.dtype == bool and rec.value.size and rec.value.all() == rec.value.any():
            return bool(rec.value.ravel()[0])
        raise Refuse(f"{what} with a constant array whose entries differ")
    return value
