"""Bounded memo tables for constructors whose results are shared, read-only objects.

:func:`kernelshape.activation` and the network families (:func:`~kernelshape.mlp`,
:func:`~kernelshape.resnet`) return one object per canonical input, so the work done once on
an object (the sympy analysis of an activation, its vectorized branches, a network's slope
polynomials) is reused by every later call with the same input: a DKS solve from a name
costs what a solve with a kept object costs. Sharing is safe because these objects are
read-only (:class:`~kernelshape.errors.ImmutableError` on assignment).

:func:`activation_key` gives an :func:`~kernelshape.activation` call its key, and
:class:`ReadOnlyValues` holds a shared Activation's parameter values.

A table keeps the ``maxsize`` most recently used entries (least recently used dropped
first), so memory stays bounded however many distinct inputs a process sees. Errors are
never stored: a bad input raises on every call.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from .errors import ImmutableError

__all__ = ["Memo", "ReadOnlyValues", "activation_key"]


class Memo:
    """A thread-safe LRU table ``key -> object``, filled by the caller's builder.

    Args:
        maxsize: entries kept (the least recently used beyond that are dropped).

    Example:
        >>> memo = Memo(2)
        >>> a = memo.get(("tanh",), lambda: object())
        >>> memo.get(("tanh",), lambda: object()) is a
        True
        >>> memo.get(None, lambda: 1)   # no key: built every time, nothing stored
        1
        >>> len(memo)
        1
    """

    def __init__(self, maxsize: int):
        self.maxsize = int(maxsize)
        self._table: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key, build):
        """The object stored under ``key``, else ``build()`` stored and returned.

        ``key = None`` (an input with no canonical form) builds without storing. Two
        threads building the same key at once both get the object stored first.
        """
        if key is None:
            return build()
        with self._lock:
            hit = self._table.get(key)
            if hit is not None:
                self._table.move_to_end(key)
                return hit
        value = build()     # outside the lock: building may take seconds, or recurse
        with self._lock:
            value = self._table.setdefault(key, value)
            self._table.move_to_end(key)
            while len(self._table) > self.maxsize:
                self._table.popitem(last=False)
        return value

    def clear(self) -> None:
        """Drop every entry (later calls build afresh)."""
        with self._lock:
            self._table.clear()

    def __len__(self):
        return len(self._table)


class ReadOnlyValues(dict):
    """The fixed parameter values of an Activation: a dict that refuses changes.

    Example:
        >>> v = ReadOnlyValues(alpha=1.0)
        >>> try:
        ...     v["alpha"] = 2.0
        ... except ImmutableError as err:
        ...     print(type(err).__name__, dict(v))
        ImmutableError {'alpha': 1.0}
    """

    def _refuse(self, *args, **kwargs):
        raise ImmutableError("an Activation's parameter values are read-only; use "
                             ".fix(name=value) for an activation with other values")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = _refuse
    __ior__ = _refuse

    def __reduce__(self):
        return ReadOnlyValues, (dict(self),)


def activation_key(spec, parameters, name, values):
    """The canonical form of an :func:`activation` call, or None (not memoized) when an
    input has none: values other than int, float or None, unusual parameter lists."""
    if type(spec) is str and not (parameters or values) and name is None:
        return spec   # the common call, activation("tanh"): the text is the key
    import sympy as sp  # only reached once sympy is loaded: no import cost here

    if isinstance(spec, str):
        head = ("text", spec)
    elif isinstance(spec, sp.Basic):
        head = ("sympy", sp.srepr(spec))   # carries the symbols' assumptions too
    else:
        return None
    if not (isinstance(parameters, tuple) and all(type(p) is str for p in parameters)):
        return None
    if not (name is None or type(name) is str):
        return None
    if not all(v is None or type(v) in (int, float) for v in values.values()):
        return None
    # repr keeps what == would merge: -0.0 and 0.0, 1 and 1.0 (True is not an int here)
    fixed = tuple(sorted((k, type(v).__name__, repr(v)) for k, v in values.items()))
    return head, parameters, name, fixed
