"""A jaxpr flattened into one list of instructions, call primitives inlined.

``jax.make_jaxpr`` nests the bodies of ``jit``, ``custom_jvp_call`` (``jax.nn.relu``,
``jax.nn.gelu``, ...), ``custom_vjp_call`` and ``checkpoint`` in their equations, and jax
reuses one inner jaxpr for every call of the same function. Flattening gives every value
one integer id, so the reader (:mod:`._trace`) and the shaped evaluation (:mod:`._shape`)
walk one list and may key their records by id. Literals and captured constants become
:class:`Lit` operands.
"""

from __future__ import annotations

import dataclasses

import numpy as np

#: Primitives whose body is inlined (their parameter holding the body, in order of lookup).
INLINED = {
    "jit": ("jaxpr",), "pjit": ("jaxpr",), "closed_call": ("call_jaxpr",),
    "core_call": ("call_jaxpr",), "custom_jvp_call": ("call_jaxpr", "fun_jaxpr"),
    "custom_vjp_call": ("call_jaxpr", "fun_jaxpr"), "custom_vjp_call_jaxpr": ("fun_jaxpr",),
    "remat": ("jaxpr",), "checkpoint": ("jaxpr",),
}


@dataclasses.dataclass(frozen=True)
class Lit:
    """A constant operand: a jaxpr literal or a captured constant."""

    value: object


@dataclasses.dataclass(frozen=True)
class Instr:
    """One equation: its primitive, parameters, operand ids (or :class:`Lit`), result ids,
    and where it comes from (the user's source line, else the equation)."""

    prim: object
    params: dict
    ins: tuple
    outs: tuple
    where: str

    @property
    def name(self) -> str:
        return self.prim.name


def _frame_text(source_info) -> str:
    """The innermost user frame outside jax and flax, as ``file:line (function)``."""
    from jax._src import source_info_util
    frames = list(source_info_util.user_frames(source_info.traceback))
    mine = [f for f in frames if "/flax/" not in f.file_name.replace("\\", "/")] or frames
    if not mine:
        return ""
    f = mine[0]
    return f"{f.file_name}:{f.start_line} ({f.function_name})"


def _where(eqn, outer) -> str:
    try:
        text = _frame_text(eqn.source_info)
    except (ImportError, AttributeError, TypeError):   # pragma: no cover - private API moved
        text = ""
    if not text or text == "unknown":
        return outer or f"equation {eqn.primitive.name}"
    scope = str(getattr(eqn.source_info, "name_stack", "") or "")
    return f"{scope} ({text})" if scope else text


def _body(eqn):
    for key in INLINED.get(eqn.primitive.name, ()):
        body = eqn.params.get(key)
        if body is not None:
            if hasattr(body, "jaxpr"):        # a ClosedJaxpr
                return body.jaxpr, list(body.consts)
            return body, []
    return None


def flatten(closed) -> tuple[list[Instr], list[int], list, dict]:
    """Instructions, input ids, output references and shapes (by id) of a ``ClosedJaxpr``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> instrs, ins, outs, shapes = flatten(jax.make_jaxpr(jax.nn.relu)(jnp.ones(2)))
        >>> [i.name for i in instrs], ins, outs
        (['max'], [0], [1])
    """
    from jax.extend.core import Literal
    instrs: list[Instr] = []
    shapes: dict = {}
    counter = iter(range(1 << 62))

    def walk(jaxpr, consts, in_refs, outer):
        env = {}
        for var, const in zip(jaxpr.constvars, consts, strict=True):
            env[var] = Lit(const)
        for var, ref in zip(jaxpr.invars, in_refs, strict=True):
            env[var] = ref

        def read(atom):
            if isinstance(atom, Literal):
                return Lit(atom.val)
            return env[atom]

        for eqn in jaxpr.eqns:
            ins = tuple(read(a) for a in eqn.invars)
            body = _body(eqn)
            if body is not None:
                outs = walk(body[0], body[1], ins, _where(eqn, outer))
                for var, ref in zip(eqn.outvars, outs, strict=True):
                    env[var] = ref
                continue
            out_ids = tuple(next(counter) for _ in eqn.outvars)
            for var, ref in zip(eqn.outvars, out_ids, strict=True):
                env[var] = ref
                shapes[ref] = tuple(getattr(var.aval, "shape", ()))
            instrs.append(Instr(eqn.primitive, dict(eqn.params), ins, out_ids,
                                _where(eqn, outer)))
        return [read(v) for v in jaxpr.outvars]

    in_ids = [next(counter) for _ in closed.jaxpr.invars]
    for var, ref in zip(closed.jaxpr.invars, in_ids, strict=True):
        shapes[ref] = tuple(var.aval.shape)
    outs = walk(closed.jaxpr, list(closed.consts), in_ids, "")
    return instrs, in_ids, outs, shapes


def run(instrs, in_ids, outs, args, override=None):
    """Evaluate the flat instructions on ``args``; ``override(instr, env)`` may replace an
    instruction's results (returns None to keep them). Returns ``(outputs, env)``."""
    env = dict(zip(in_ids, args, strict=True))

    def read(ref):
        return ref.value if isinstance(ref, Lit) else env[ref]

    for instr in instrs:
        vals = [read(r) for r in instr.ins]
        result = instr.prim.bind(*vals, **instr.params)
        results = result if instr.prim.multiple_results else (result,)
        env.update(zip(instr.outs, results, strict=True))
        if override is not None:
            replaced = override(instr, env)
            if replaced is not None:
                env.update(replaced)
    return [read(r) for r in outs], env


def scalar_of(value):
    """The one value of a constant array whose entries are all equal, else None."""
    arr = np.asarray(value)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        return None
    flat = arr.ravel()
    if flat.size == 0 or not np.all(flat == flat[0]):
        return None
    return flat[0].item()
