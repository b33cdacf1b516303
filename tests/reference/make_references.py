"""Regenerate the mpmath reference values of the Q and C maps (tests/reference/maps.json).

Every value comes from :mod:`kernelshape.maps.precise` (mpmath quadrature, correct to the
recorded number of significant digits, 40 unless noted per entry) and is stored as a
decimal string; infinite values as "inf". The script is resumable: entries already in the
JSON file are kept, the rest are computed cheapest first and the file is rewritten after
each one, so it can be stopped and restarted at will::

    nohup python tests/reference/make_references.py > /tmp/references.log 2>&1 &

Options: ``--digits N`` (default 40), ``--only NAME`` (one activation), ``--max-seconds S``
(stop after S seconds), ``--out PATH``, ``--shard I/N`` (take every N-th pending job from I,
so N processes can share the work; each writes its own ``--out`` file) and ``--merge
FILE...`` (fold shard files into ``--out``, keeping entries already there).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import sys
import time

import mpmath
import sympy as sp

import kernelshape as ks
from kernelshape.maps import precise

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "maps.json")

QS = (0.1, 0.5, 1.0, 2.0, 10.0)
CS = (-1.0, -0.9, -0.5, 0.0, 0.3, 0.7, 0.95, 0.999, 1.0)
#: (input_scale, input_shift) pairs of the transformed activations, all at q = 1.
AFFINE = ((0.01, 0.0), (0.3, -3.0), (1.7, 0.5), (10.0, 3.0))


def cases():
    """[(case id, activation, label dict)] for every built-in and variant."""
    out = []
    for name in ks.builtins():
        if name == "leaky_relu":
            for slope in (0.2, 0.01):
                out.append((f"leaky_relu[{slope}]", {"name": name, "negative_slope": slope}))
        else:
            out.append((name, {"name": name}))
    return out


def make_activation(spec):
    values = {k: v for k, v in spec.items() if k != "name"}
    return ks.activation(spec["name"], **values)


def jobs():
    """All (key, description) pairs, cheapest first."""
    plain, affine = [], []
    for case_id, spec in cases():
        for q in QS:
            plain.append(((case_id, 1.0, 0.0, "q_map", q, None), spec))
            for c in CS:
                plain.append(((case_id, 1.0, 0.0, "c_map", q, c), spec))
        for a, b in AFFINE:
            affine.append(((case_id, a, b, "q_map", 1.0, None), spec))
            for c in CS:
                affine.append(((case_id, a, b, "c_map", 1.0, c), spec))

    family = {}
    for case_id, spec in cases():
        act = make_activation(spec)
        # closed forms first, then one analytic piece (trapezoid sums), then several pieces
        family[case_id] = (0 if act.c_map_expr(order=0) is not None
                           else 1 if len(act.pieces) == 1 else 2)

    def cost(item):
        (case_id, a, b, kind, q, c), _ = item
        one_d = kind == "q_map" or c in (-1.0, 0.0, 1.0)
        if abs(a) >= 10 or (case_id == "softsign" and not one_d):
            tier = 4
        elif (a, b) == (1.0, 0.0):
            tier = 0 if q == 1.0 else 1 if one_d else 3
        else:
            tier = 2
        return (family[case_id], tier, not one_d, q, case_id, a, b)

    return sorted(plain + affine, key=cost)


def key_of(entry):
    return (entry["case"], entry["input_scale"], entry["input_shift"], entry["kind"],
            entry["q"], entry["c"])


def text(value):
    if mpmath.isinf(value):
        return "inf" if value > 0 else "-inf"
    return mpmath.nstr(value, 42, min_fixed=-5, max_fixed=5)


def closed_form(act, kind, q, c, digits):
    """[order 0, 1, 2] from the exact sympy closed form at ``digits + 10`` digits, or None.

    Used where kernelshape knows a closed form (relu family, sin, cos, polynomials, ...): an
    exact expression, independent of the quadrature code. None when there is none or a value
    is not finite (a removable singularity at c = +-1 is left to the quadrature).
    """
    from kernelshape.maps import closed_forms as cf

    exprs = _closed_exprs(act, kind, q)
    if exprs is None:
        return None
    symbol, at = (cf.Q, q) if kind == "q_map" else (cf.C, c)
    values = []
    for expr in exprs:
        value = sp.N(expr.subs(symbol, sp.Rational(at)), digits + 10)
        if not value.is_finite or not value.is_real:
            return None
        values.append(mpmath.mpf(str(value)))
    return values


@functools.cache
def _closed_exprs(act, kind, q):
    """The three exact closed-form expressions (orders 0-2) of ``act``'s Q or C map (at
    input ``q``), or None; kept for the other c values of the same map (sympy takes up to
    a minute for a shifted sin)."""
    # Floats in the activation (negative slopes, affine factors) hold binary doubles; as
    # exact rationals the closed form stays exact (computed from Floats, sympy would round
    # its coefficients to 53 bits), with the same numbers the float64 and quadrature use.
    # (an affine version is rebuilt from its base and factors, as the other routes use it)
    from kernelshape.parsing import X
    base = act.base if act.is_affine else act
    expr = base.expr.xreplace({f: sp.Rational(f) for f in base.expr.atoms(sp.Float)})
    a, b, d, g = (sp.Rational(v) for v in act.affine_params)
    if expr.has(sp.sin, sp.cos) and max(v.q for v in (a, b, d, g)) > 2**20:
        return None   # sympy's closed form swells past 9 GB with 53-bit rationals in a trig
    act = ks.activation(g * (expr.subs(X, a * X + b) + d))
    out = []
    for k in range(3):
        if kind == "q_map":
            expr = act.q_map_expr(order=k)
        else:
            expr = act.c_map_expr(order=k, q=sp.Rational(q))
        if expr is None or expr.atoms(sp.Float):
            return None        # none, or rounded coefficients: not a 40-digit reference
        out.append(expr)
    return tuple(out)


def compute(spec, a, b, kind, q, c, digits):
    """(values, source): closed form where known, else mpmath quadrature."""
    act = make_activation(spec)
    if (a, b) != (1.0, 0.0):
        act = act.affine(a, b)
    with mpmath.workdps(digits + 10):
        exact = closed_form(act, kind, q, c, digits)
    if exact is not None:
        return exact, "closed form"
    if kind == "q_map":
        return [precise.q_map(act, q, k, digits) for k in range(3)], "quadrature"
    return [precise.c_map(act, c, q, k, digits) for k in range(3)], "quadrature"


def save(path, provenance, entries):
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump({"provenance": provenance, "entries": entries}, fh, indent=0,
                  separators=(",", ":"))
        fh.write("\n")
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, default=40)
    parser.add_argument("--only", default=None)
    parser.add_argument("--max-seconds", type=float, default=None)
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--shard", default="0/1")
    parser.add_argument("--merge", nargs="+", default=None)
    args = parser.parse_args(argv)
    shard, shards = (int(part) for part in args.shard.split("/"))
    start = time.time()
    entries = []
    if os.path.exists(args.out):
        with open(args.out) as fh:
            entries = json.load(fh)["entries"]
    done = {key_of(e) for e in entries}
    provenance = {
        "generator": "tests/reference/make_references.py",
        "kernelshape": ks.__version__,
        "mpmath": mpmath.__version__,
        "python": sys.version.split()[0],
        "method": ("entries with source 'closed form': kernelshape's exact sympy closed form "
                   "(maps.closed_forms) evaluated at digits + 10; source 'quadrature' (or "
                   "none recorded): kernelshape.maps.precise: Q^(k)(q) = E[phi(sqrt q z)^2 He_2k(z)]/(2q)^k "
                   "and C^(k)(c) by the double integral with Hermite weights (THEORY.md §1); "
                   "composite Gauss-Legendre split at kinks, closed-form inner integrals "
                   "for piecewise x^r exp(lam x) activations and for rational pieces with "
                   "simple poles (softsign: truncated moments plus edge integrals, "
                   "maps._mpinner), trapezoid sums for analytic "
                   "ones, 1-D forms plus Dirac masses at c = +-1; two rules must agree"),
        "digits": "per entry (field 'digits')",
        "date": datetime.date.today().isoformat(),
        "values": "[order 0, order 1, order 2] as decimal strings; 'inf' where infinite",
    }
    if args.merge:
        for path in args.merge:
            with open(path) as fh:
                for entry in json.load(fh)["entries"]:
                    if key_of(entry) not in done:
                        done.add(key_of(entry))
                        entries.append(entry)
        save(args.out, provenance, entries)
        print(f"{len(entries)} entries in {args.out}")
        return
    # shard the pending jobs (shards started from the same file split the work evenly)
    pending = [job for job in jobs() if job[0] not in done
               and not (args.only and not job[0][0].startswith(args.only))]
    for (case_id, a, b, kind, q, c), spec in pending[shard::shards]:
        if args.max_seconds and time.time() - start > args.max_seconds:
            break
        t0 = time.time()
        try:
            values, source = compute(spec, a, b, kind, q, c, args.digits)
        except Exception as err:  # noqa: BLE001 - record and go on with the others
            print(f"FAILED {case_id} a={a} b={b} {kind} q={q} c={c}: {err}", flush=True)
            continue
        entries.append({"case": case_id, "spec": spec, "input_scale": a, "input_shift": b,
                        "kind": kind, "q": q, "c": c, "digits": args.digits, "source": source,
                        "values": [text(v) for v in values]})
        save(args.out, provenance, entries)
        print(f"{time.time() - t0:8.1f}s {source[:6]} {case_id} a={a} b={b} {kind} q={q} c={c}",
              flush=True)


if __name__ == "__main__":
    main()
