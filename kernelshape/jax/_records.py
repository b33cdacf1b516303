"""What the reader knows about each value of a flattened jaxpr.

* :class:`Data` — a function of the model's input: the network ``path`` (steps from the
  input) whose output ``u`` it is, up to a pending element-wise expression ``expr(x)`` of the
  value at ``base`` and a ``gain``: ``value(base) = gain * u``.
* :class:`Param` — a leaf of the params tree (``perm``: which original axis each axis is;
  None once reshaped or broadcast: then only a bias or a scale).
* :class:`Const` — a constant array (literals, captured constants and what they compute).
* :class:`Stat` — a statistic over the feature axis (a layer norm's mean or variance).
* :class:`LNPart` — a value being layer-normalized (centred and/or scaled by statistics).
* :class:`Poison` — downstream of something already refused (no further report).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ._elementwise import X


@dataclasses.dataclass(frozen=True)
class Step:
    """One layer on a path: a unique id, the kernelshape node, its source, its kind and the
    id of the value it produces."""

    uid: int
    node: object
    where: str
    kind: str
    out: int


@dataclasses.dataclass(frozen=True)
class Data:
    path: tuple
    expr: object
    base: int
    gain: float = 1.0
    aliases: frozenset = frozenset()

    @property
    def keys(self) -> frozenset:
        return self.aliases | {self.base}

    @property
    def plain(self) -> bool:
        return self.expr == X


@dataclasses.dataclass(frozen=True)
class Param:
    leaf: int
    perm: tuple | None


@dataclasses.dataclass(frozen=True)
class Const:
    value: np.ndarray


@dataclasses.dataclass(frozen=True)
class Stat:
    key: frozenset
    root: bool = False          # an (r)sqrt was taken: a standard deviation
    roles: tuple = ()           # (leaf, "ones" | "zeros") of params folded in


@dataclasses.dataclass(frozen=True)
class LNPart:
    inp: Data
    centered: bool = False
    scaled: bool = False
    roles: tuple = ()


class Poison:
    """Downstream of a refused equation."""


POISON = Poison()


class Refuse(Exception):
    """Raised by a rule: the equation does not fit the theory (the reason is the message)."""
