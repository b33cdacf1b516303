"""numba's per-function disk cache, checked (see :mod:`kernelshape._jitcache` for the policy).

:class:`_CheckedCache` replaces the ``FunctionCache`` of each jitted function of a generated
module: entries live only in the module's ``__pycache__`` (never numba's user-wide
directory), are framed with a checksum, are keyed by the module text's hash, are read only
from files this user owns and nobody else can write, and any entry that fails to load is
deleted and recompiled. :func:`checked_kernels` adds the first-call checks of the kernels.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import math
import os
import pickle
import stat
import types
import uuid

import numpy as np
from numba.core.caching import (
    CompileResultCacheImpl,
    FunctionCache,
    IndexDataCacheFile,
    InTreeCacheLocator,
)
from numba.core.dispatcher import Dispatcher

from ._jitcache import warn

__all__ = ["attach_caches", "checked_kernels"]

_RTOL_EVALUATE = 1e-9   # compiled vs interpreted branch code (libm may differ in the last bits)
_RTOL_SCHWARZ = 1e-3    # the Gauss-Hermite E[f^2] of a kinked f is good to ~1e-5
_MAGIC = b"kernelshape-numba-cache-1\n"


def frame(payload: bytes) -> bytes:
    """``payload`` prefixed by a magic line and its SHA-256, as cache entries are stored."""
    return _MAGIC + hashlib.sha256(payload).digest() + payload


def unframe(blob: bytes, path) -> bytes:
    """The payload of a framed cache entry; ValueError if it is not intact."""
    head = len(_MAGIC) + 32
    if not blob.startswith(_MAGIC) or len(blob) < head:
        raise ValueError(f"{path} is not a kernelshape cache entry (garbage or truncated)")
    payload = blob[head:]
    if hashlib.sha256(payload).digest() != blob[len(_MAGIC):head]:
        raise ValueError(f"{path} fails its checksum (truncated or altered)")
    return payload


def is_finite_close(a: float, b: float, rtol: float) -> bool:
    """``a == b`` to ``rtol`` (NaN matches NaN, infinities match exactly)."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= rtol * max(abs(a), abs(b)) + 1e-300


class _Untrusted(ValueError):
    """A cache entry someone else could have written (a ValueError, not an OSError: numba
    treats OSError on a data file as 'missing' and would recompile without a word)."""


def _read_trusted(path) -> bytes:
    """Bytes of ``path``, which must be a regular file of ours that others cannot write
    (checked on the open descriptor: no window between check and read, no symlink)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            raise _Untrusted(f"{path} is not a regular file owned by this user")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise _Untrusted(f"{path} is writable by group or others")
        return f.read()


class _CheckedFile(IndexDataCacheFile):
    """numba's index/data files, framed with a SHA-256 and read only when trusted."""

    def _load_index(self):
        try:
            blob = _read_trusted(self._index_path)
        except FileNotFoundError:
            return {}
        stream = io.BytesIO(unframe(blob, self._index_path))
        # numba's layout: its version, then the pickled (source stamp, {key: data file}).
        if pickle.load(stream) != self._version:
            return {}
        stamp, overloads = pickle.loads(stream.read())
        return overloads if stamp == self._source_stamp else {}

    def _save_index(self, overloads):
        buf = io.BytesIO()
        pickle.dump(self._version, buf, protocol=-1)
        buf.write(self._dump((self._source_stamp, overloads)))
        with self._open_for_write(self._index_path) as f:
            f.write(frame(buf.getvalue()))

    def _load_data(self, name):
        path = self._data_path(name)
        return pickle.loads(unframe(_read_trusted(path), path))

    def _save_data(self, name, data):
        with self._open_for_write(self._data_path(name)) as f:
            f.write(frame(self._dump(data)))

    @contextlib.contextmanager
    def _open_for_write(self, filepath):
        # As numba's, but private (0600, whatever the umask) and the temporary file is
        # removed on any error, including a full disk part-way through.
        tmp = f"{filepath}.tmp.{uuid.uuid4().hex[:16]}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                yield f
            os.replace(tmp, filepath)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


class _InTreeImpl(CompileResultCacheImpl):
    # Only the module's own (checked) __pycache__: never NUMBA_CACHE_DIR or ~/.cache/numba.
    _locator_classes = (InTreeCacheLocator,)


class _CheckedCache(FunctionCache):
    """A ``FunctionCache`` that heals: broken entries are discarded, write errors leave the
    code compiled in memory. Keys include the module text's hash (numba's hash only the
    bytecode, not its constants)."""

    _impl_class = _InTreeImpl

    def __init__(self, py_func, digest):
        super().__init__(py_func)
        self._digest = digest
        plain = self._cache_file
        self._cache_file = _CheckedFile(plain._cache_path, self._impl.filename_base,
                                        plain._source_stamp)

    def _index_key(self, sig, codegen):
        return (*super()._index_key(sig, codegen), self._digest)

    def load_overload(self, sig, target_context):
        try:
            return super().load_overload(sig, target_context)
        except Exception as err:  # noqa: BLE001 - any entry that cannot be loaded is rebuilt
            warn(f"kernelshape discarded a broken numba cache entry of {self._py_func.__name__}"
                 f" in {self._cache_path} ({type(err).__name__}: {err}); recompiling")
            self._discard()
            return None

    def save_overload(self, sig, data):
        try:
            super().save_overload(sig, data)
        except OSError as err:
            warn(f"kernelshape cannot save compiled kernels to {self._cache_path} ({err}); "
                 "they stay compiled in memory for this process")
            self._discard()   # no index pointing at a data file that was never written
            self.disable()

    def _discard(self):
        base = self._impl.filename_base
        for name in os.listdir(self._cache_path):
            if name.startswith(base + "."):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self._cache_path, name))


def attach_caches(module, digest: str) -> None:
    """Give every jitted function of ``module`` a :class:`_CheckedCache`."""
    for obj in list(vars(module).values()):
        if isinstance(obj, Dispatcher):
            try:
                obj._cache = _CheckedCache(obj.py_func, digest)
            except (OSError, RuntimeError) as err:   # the directory vanished under us
                warn(f"kernelshape cannot cache {obj.py_func.__name__} on disk ({err}); "
                     "compiled in memory")


# -- first-call checks of what was loaded ---------------------------------------------------
def checked_kernels(module, reload) -> None:
    """Wrap ``evaluate`` and ``c_direct`` so their first call in this process checks the
    result; machine code loaded from disk that fails is discarded (``reload()``, with a
    :class:`CacheWarning`) and the call repeated with freshly compiled code. Later calls go
    straight to the dispatcher (the wrapper replaces itself)."""
    for name, check in (("evaluate", _check_evaluate), ("c_direct", _check_c_direct)):
        kernel = getattr(module, name)
        setattr(module, name, _first_call(module, name, kernel, check, reload))


def _first_call(module, name, kernel, check, reload):
    @functools.wraps(kernel.py_func)
    def first(*args):
        result = kernel(*args)
        problem = check(module, args, result)
        if problem and _loaded_from_disk(module):
            warn(f"kernelshape discarded the cached machine code of {name} in "
                 f"{module.__file__}: {problem}; recompiled")
            reload()
            return getattr(module, name)(*args)
        if getattr(module, name) is first:
            setattr(module, name, kernel)
        return result
    first.kernel = kernel
    return first


def _loaded_from_disk(module) -> bool:
    """Whether any function of ``module`` (a kernel or one it calls) came from disk."""
    kernels = (getattr(obj, "kernel", obj) for obj in vars(module).values())
    return any(sum(obj.stats.cache_hits.values()) for obj in kernels
               if isinstance(obj, Dispatcher))


def _interpreted(module):
    """The module's jitted functions as plain Python functions calling each other."""
    namespace = dict(vars(module))
    for key, value in vars(module).items():
        value = getattr(value, "kernel", value)   # a first-call wrapper: its dispatcher
        if isinstance(value, Dispatcher):
            f = value.py_func
            namespace[key] = types.FunctionType(f.__code__, namespace, f.__name__,
                                                f.__defaults__, f.__closure__)
    return namespace


def _check_evaluate(module, args, out):
    """Compiled ``evaluate`` agrees with its source run by Python at a few of the inputs."""
    xs, order, lo, hi, br = args
    if xs.shape[0] == 0:
        return None
    pure = _interpreted(module)
    for j in sorted(set(np.linspace(0, xs.shape[0] - 1, 5).astype(int).tolist())):
        x = float(xs[j])
        if math.isnan(x):
            continue
        try:
            want = float(pure["_branch"](int(br[pure["_piece_of"](x, lo, hi)]), order, x))
        except (ArithmeticError, ValueError):
            continue   # Python raises where float64 code overflows: nothing to compare
        if not is_finite_close(float(out[j]), want, _RTOL_EVALUATE):
            return f"phi^({order})({x!r}) = {float(out[j])!r}, its source gives {want!r}"
    return None


def _check_c_direct(module, args, result):
    """Order 0: ``|E[f(U) f(V)]| <= E[f(U)^2]`` (Cauchy-Schwarz, i.e. ``|C| <= 1``)."""
    cs, order, alpha, beta, g, d, lo, hi, br = args[:9]
    out = args[-1]
    if order != 0:
        return None
    z, w = np.polynomial.hermite_e.hermegauss(96)
    f = g * (module.evaluate(np.ascontiguousarray(alpha * z + beta), 0, lo, hi, br) + d)
    energy = float(np.sum(w * f * f) / math.sqrt(2 * math.pi))
    for c, value in zip(cs, out):
        if not math.isfinite(value) or abs(value) > energy * (1 + _RTOL_SCHWARZ) + 1e-300:
            return (f"E[f(U) f(V)] = {float(value)!r} at c = {float(c)!r} exceeds "
                    f"E[f^2] = {energy!r} "
                    "(|C| > 1)")
    return None
