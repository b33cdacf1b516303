"""The on-disk cache of the generated numba modules (:mod:`kernelshape._jit`), made safe.

A cache directory is shared with anything that can write to it, and numba's cache files are
pickles (loading one runs code). So the cache is used only where nobody else can write:

* **Directories** (``$KERNELSHAPE_CACHE_DIR`` or ``~/.cache/kernelshape``, else the fallback
  ``<tmp>/kernelshape-<uid>``, and their ``__pycache__``) must be real directories owned by
  this user and not writable by group or others; new ones are created 0700. Checked on every
  use; a directory that fails is skipped with a :class:`CacheWarning` naming why (the
  fallback is never a symlink). With no usable directory, kernels compile in memory.
* **Modules** are executed from the text kernelshape generates in this process, never read
  back from disk: the file on disk is compared byte for byte first and rewritten when it
  differs (truncated, garbage, edited), so numba's source stamp (a hash of the file) matches
  the code that runs.
* **numba entries** (``.nbi`` index, ``.nbc`` machine code) are written framed with a SHA-256
  of their content and keyed by a hash of the whole module text (numba's own key hashes the
  bytecode, which leaves out constants). Before unpickling, an entry must be a regular file
  owned by this user, not writable by others, with a matching checksum. An entry failing any
  check, or failing to load, is deleted and recompiled, with a warning.
* **A full or read-only disk** never fails a computation: the module or the machine code
  stays in memory for this process, with a warning; no temporary file is left behind.

On top, the first call of a kernel in a process checks what was loaded from disk (see
:func:`checked_kernels`): :func:`evaluate` against the pure-Python execution of the same
source, :func:`c_direct` (order 0) against Cauchy-Schwarz (``|E[f(U) f(V)]| <= E[f^2]``,
i.e. ``|C| <= 1``). Code that fails is discarded and recompiled.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import tempfile
import types
import warnings
from pathlib import Path

__all__ = ["CacheWarning", "cache_dir", "load_module"]

_WARNED: set[str] = set()


class CacheWarning(UserWarning):
    """The on-disk numba cache could not be used as configured, or held a broken entry."""


def warn(message: str) -> None:
    """Emit ``message`` as a :class:`CacheWarning`, once per process."""
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, CacheWarning, stacklevel=3)


# -- directories -------------------------------------------------------------------------
def cache_dir() -> Path | None:
    """A trusted, writable directory for generated modules, or None (compile in memory).

    ``$KERNELSHAPE_CACHE_DIR``, else ``$XDG_CACHE_HOME/kernelshape`` (``~/.cache``); if that
    cannot be used, ``<tmp>/kernelshape-<uid>``; each only when :func:`_unusable` finds
    nothing wrong with it (checked on every call: ownership can change under a process).
    """
    configured = os.environ.get("KERNELSHAPE_CACHE_DIR")
    base = Path(configured) if configured else Path(
        os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kernelshape"
    reason = _unusable(base, follow_symlinks=True)
    if reason is None:
        return base
    warn(f"kernelshape cannot use {base} for its numba cache ({reason}); falling back")
    fallback = Path(tempfile.gettempdir()) / f"kernelshape-{os.getuid()}"
    # A shared temporary directory: someone else may have created this name first, or
    # planted a symlink; the directory itself must be ours (lstat, not stat).
    reason = _unusable(fallback, follow_symlinks=False)
    if reason is None:
        warn(f"kernelshape caches compiled kernels in {fallback} instead of {base}")
        return fallback
    warn(f"kernelshape cannot use {fallback} for its numba cache either ({reason}); "
         "kernels are compiled in memory for this process")
    return None


def _unusable(directory: Path, *, follow_symlinks: bool) -> str | None:
    """Why ``directory`` (created 0700 if missing, with its ``__pycache__``) cannot hold the
    cache, or None when it is private to this user and writable."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        reason = _untrusted(directory, follow_symlinks=follow_symlinks, want_dir=True)
        if reason is not None:
            return reason
        pycache = directory / "__pycache__"
        pycache.mkdir(mode=0o700, exist_ok=True)   # numba's own would follow the umask
        reason = _untrusted(pycache, follow_symlinks=False, want_dir=True)
        if reason is not None:
            return f"{pycache}: {reason}"
        for where in (directory, pycache):   # numba would silently cache elsewhere
            probe = where / f".probe-{os.getpid()}"
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, b"ok")
            finally:
                os.close(fd)
                os.unlink(probe)
    except OSError as err:
        return f"not writable: {err}"
    return None


def _untrusted(path: Path, *, follow_symlinks: bool = False, want_dir: bool = False):
    """Why ``path`` could hold someone else's content (not ours, writable by others, not
    a regular file or directory), or None. Raises FileNotFoundError when it is missing."""
    info = os.stat(path) if follow_symlinks else os.lstat(path)
    kind = stat.S_ISDIR if want_dir else stat.S_ISREG
    if not kind(info.st_mode):
        return f"not a {'directory' if want_dir else 'regular file'}"
    if info.st_uid != os.geteuid():
        return f"owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return (f"writable by group or others (mode {stat.S_IMODE(info.st_mode):o}); "
                "chmod go-w it to use it")
    return None


# -- modules -------------------------------------------------------------------------------
def load_module(key: str, source: str, *, first_use_checks: bool = True):
    """The module ``key`` executed from ``source``, its kernels cached on disk when a
    trusted directory is available (else compiled in memory).

    ``first_use_checks``: wrap an activation module's kernels in the checks of
    :func:`kernelshape._jitnumba.checked_kernels`; a module of other functions (the
    closed forms of :mod:`kernelshape.maps._closed64`) checks them itself.
    """
    directory = cache_dir()
    if directory is None:
        return _execute(key, source, None, first_use_checks)
    path = directory / f"{key}.py"
    try:
        _ensure_source(path, source)
    except OSError as err:
        warn(f"kernelshape cannot write its numba cache to {directory} ({err}); "
             "kernels are compiled in memory for this process")
        return _execute(key, source, None, first_use_checks)
    return _execute(key, source, path, first_use_checks)


def _ensure_source(path: Path, source: str) -> None:
    """Make the file at ``path`` hold exactly ``source``, discarding anything else there."""
    data = source.encode()
    try:
        reason = _untrusted(path)
        if reason is None:
            existing = path.read_bytes()
            if existing == data:
                return
            reason = ("truncated" if data.startswith(existing) else
                      "its content is not the source kernelshape generates")
    except FileNotFoundError:
        _write_atomic(path, data)
        return
    warn(f"kernelshape discarded the cached module {path} ({reason}) and rebuilt it")
    discard(path)
    _write_atomic(path, data)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a private temporary file, removed on any error
    (and temporary files an hour old, left by killed processes, are swept on the way)."""
    _sweep(path.parent)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        if tmp.exists():
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _sweep(directory: Path, age: float = 3600.0) -> None:
    """Remove our temporary files older than ``age`` seconds from ``directory`` and its
    ``__pycache__`` (only on the writing path: a listing per new module, never per load)."""
    import time
    limit = time.time() - age
    for where in (directory, directory / "__pycache__"):
        try:
            names = [n for n in os.listdir(where) if n.startswith("_kernelshape_jit_")
                     and (n.endswith(".tmp") or ".tmp." in n)]
            for name in names:
                entry = where / name
                if os.lstat(entry).st_mtime < limit:
                    entry.unlink()
        except OSError:
            pass   # a sweep is housekeeping: never a reason to fail


def discard(path: Path) -> None:
    """Delete the module file ``path`` and all numba's entries for it."""
    path.unlink(missing_ok=True)
    for entry in (path.parent / "__pycache__").glob(f"{path.stem}.*"):
        if entry.suffix in (".nbi", ".nbc") or ".tmp." in entry.name:
            entry.unlink(missing_ok=True)


def _execute(key, source, path, first_use_checks=True):
    """Run ``source`` as module ``key``; with a ``path``, attach checked disk caches."""
    from ._jitnumba import attach_caches, checked_kernels

    module = types.ModuleType(key)
    module.__file__ = str(path) if path is not None else f"<{key}>"
    sys.modules[key] = module
    code = compile(source, module.__file__, "exec")
    exec(code, module.__dict__)  # noqa: S102 - the text generated in this process
    if path is not None:
        digest = hashlib.sha256(source.encode()).hexdigest()
        attach_caches(module, digest)
        if first_use_checks:
            checked_kernels(module, lambda: _reload(module, source, path))
    return module


def _reload(module, source, path):
    """Discard ``module``'s disk entries and re-run its source in place (fresh dispatchers
    that recompile; callers keep their reference to the module object)."""
    from ._jitnumba import attach_caches

    try:
        discard(path)
        _write_atomic(path, source.encode())
    except OSError as err:
        warn(f"kernelshape cannot rewrite {path} ({err}); kernels are compiled in memory")
        exec(compile(source, f"<{module.__name__}>", "exec"), module.__dict__)  # noqa: S102
        return
    exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102 - as above
    attach_caches(module, hashlib.sha256(source.encode()).hexdigest())
