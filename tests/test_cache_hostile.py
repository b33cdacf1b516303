"""A catalogue of hostile or broken numba caches (issue 14, points 2, 5 and 8).

Each case damages the on-disk cache of the generated module of ``tanh(x) + x/7`` (or of
``elu`` for the C map) in its own directory, then loads it again as a fresh process would
(in-process: the module registry is emptied, so new dispatchers read the files; a few cases
run a real subprocess). Expected: the right numbers, a :class:`CacheWarning` saying what was
discarded or refused, and no planted code ever run. Reference values: ``tanh(x) + x/7`` from
numpy; ``C(0.35)`` of elu from kernelshape's float64 route on an intact cache (agrees with
the 30-digit mpmath route to 1e-15).
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import pytest

import kernelshape as ks
from kernelshape import _jit, activations
from kernelshape._jit import CacheWarning
from kernelshape._memo import Memo

EXPR = "tanh(x) + x/7"
XS = np.array([-1.5, -0.2, 0.35, 2.0])
EXPECTED = np.tanh(XS) + XS / 7
ELU_C_035 = 0.3614386828852302
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private cache directory, a private temporary directory (for the fallback) and an
    empty module registry; yields the cache directory."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("KERNELSHAPE_CACHE_DIR", str(directory))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.setattr(_jit, "_MODULES", {})
    # activation() shares one object per input, with its kernels: a private table, so
    # each test starts from new objects as a new process would
    monkeypatch.setattr(activations, "_MEMO", Memo(512))
    _forget_warnings(monkeypatch)
    return directory


def _forget_warnings(monkeypatch):
    from kernelshape import _jitcache
    monkeypatch.setattr(_jitcache, "_WARNED", set())


def values():
    """``tanh(x) + x/7`` at XS through the generated module's ``evaluate`` kernel, loaded
    afresh (as a new process would: new dispatchers reading the files on disk)."""
    _jit._MODULES.clear()
    activations._MEMO.clear()
    phi = ks.activation(EXPR)
    lo, hi, br = phi._piece_arrays
    return _jit.jit_module(phi.branches).evaluate(XS.copy(), 0, lo, hi, br)


def _module_files(directory):
    return sorted(directory.glob("_kernelshape_jit_*.py"))


def _entries(directory, suffix):
    found = sorted((directory / "__pycache__").glob(f"*{suffix}"))
    assert found, f"no {suffix} files in {directory}"
    return found


def _leftovers(root):
    return [p for p in Path(root).rglob("*") if ".tmp" in p.name or ".probe" in p.name]


# -- broken module files (point 8) and tampered ones (point 5) -------------------------------
def test_truncated_module_is_rebuilt(cache):
    np.testing.assert_allclose(values(), EXPECTED, rtol=1e-15)
    (path,) = _module_files(cache)
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.warns(CacheWarning, match="truncated"):
        np.testing.assert_allclose(values(), EXPECTED, rtol=1e-15)
    assert path.read_text() == text
    np.testing.assert_allclose(values(), EXPECTED, rtol=1e-15)   # healed: no more warnings


def test_garbage_module_is_rebuilt(cache):
    values()
    (path,) = _module_files(cache)
    path.write_bytes(b"\x00\xff garbage ((( \n" * 40)
    with pytest.warns(CacheWarning, match="not the source kernelshape generates"):
        np.testing.assert_allclose(values(), EXPECTED, rtol=1e-15)


def test_tampered_valid_module_never_runs(cache, tmp_path):
    values()
    (path,) = _module_files(cache)
    text = path.read_text()
    constant = repr(1 / 7)
    assert constant in text
    marker = tmp_path / "pwned"
    path.write_text(f"open({str(marker)!r}, 'w').close()\n"
                    + text.replace(constant, "0.5"))
    with pytest.warns(CacheWarning, match="not the source kernelshape generates"):
        np.testing.assert_allclose(values(), EXPECTED, rtol=1e-15)
    assert not marker.exists()
    assert path.read_text() == text


# -- broken numba entries (point 8) ----------------------------------------------------------
@pytest.mark.parametrize("suffix, damage", [
    (".nbi", lambda b: b[: len(b) // 2]),
    (".nbi", lambda b: b"garbage" * 50),
    (".nbc", lambda b: b[: len(b) // 3]),
    (".nbc", lambda b: os.urandom(len(b))),
    (".nbc", lambda b: b[:-200] + bytes(200)),        # intact head, zeroed machine code
], ids=["truncated-nbi", "garbage-nbi", "truncated-nbc", "garbage-nbc", "zeroed-tail-nbc"])
def test_broken_numba_entry_is_rebuilt(cache, suffix, damage):
    values()
    for entry in _entries(cache, suffix):
        entry.write_bytes(damage(entry.read_bytes()))
    with pytest.warns(CacheWarning, match="discarded a broken numba cache entry"):
        np.testing.assert_allclose(values(), EXPECTED, rtol=1e-15)
    np.testing.assert_allclose(values(), EXPECTED, rtol=1e-15)   # rebuilt: loads silently


def test_broken_cache_in_a_fresh_process_gives_no_traceback(tmp_path):
    """The whole path a user meets: truncated .py, garbage .nbi and .nbc, then a new run."""
    env = {**os.environ, "KERNELSHAPE_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    code = ("import kernelshape as ks, json;"
            f"print(json.dumps(float(ks.activation({EXPR!r})(0.35))))")

    def run():
        return subprocess.run([sys.executable, "-W", "always", "-c", code], env=env,
                              capture_output=True, text=True, timeout=300, check=False)

    assert run().returncode == 0
    (path,) = _module_files(tmp_path)
    path.write_text(path.read_text()[:500])
    for entry in (tmp_path / "__pycache__").glob("*.nb?"):
        entry.write_bytes(b"\x80\x04garbage")
    out = run()
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert json.loads(out.stdout) == pytest.approx(EXPECTED[2], rel=1e-15)
    assert "CacheWarning" in out.stderr


# -- forged machine code: valid checksum, key and stamp, wrong numbers (point 5) -------------
def _forge(cache, honest, tampered, key):
    """Compile ``tampered`` text, then present its machine code as ``honest``'s: what an
    attacker who can write the user's files (or a bad disk) could leave behind."""
    from kernelshape import _jitcache, _jitnumba
    from kernelshape._jitnumba import _CheckedFile

    assert _jitcache.cache_dir() == cache
    path = cache / f"{key}.py"
    path.write_text(tampered)
    module = types.ModuleType(key)
    module.__file__ = str(path)
    exec(compile(tampered, str(path), "exec"), module.__dict__)  # noqa: S102 - test forgery
    _jitnumba.attach_caches(module, hashlib.sha256(honest.encode()).hexdigest())
    path.write_text(honest)
    old, new = (hashlib.sha256(t.encode()).digest() for t in (tampered, honest))
    return module, lambda: [
        _CheckedFile(str(cache / "__pycache__"), idx.name[:-4], new)._save_index(
            _CheckedFile(str(cache / "__pycache__"), idx.name[:-4], old)._load_index())
        for idx in (cache / "__pycache__").glob("*.nbi")]


def test_forged_evaluate_machine_code_is_caught(cache):
    phi = ks.activation(EXPR)
    key, honest = _jit.module_source(phi.branches)
    constant = repr(1 / 7)
    module, restamp = _forge(cache, honest, honest.replace(constant, "0.5"), key)
    lo, hi, br = phi._piece_arrays
    assert module.evaluate(XS.copy(), 0, lo, hi, br)[3] == pytest.approx(np.tanh(2.0) + 1.0)
    restamp()
    with pytest.warns(CacheWarning, match="cached machine code of evaluate"):
        np.testing.assert_allclose(values(), EXPECTED, rtol=1e-15)
    np.testing.assert_allclose(values(), EXPECTED, rtol=1e-15)   # recompiled and re-saved


def test_forged_c_map_machine_code_is_caught(cache):
    """|C| <= 1: a c_direct kernel doubling its result (C(0.35) = 0.72 for elu) is refused."""
    elu = ks.activation("elu")
    key, honest = _jit.module_source(elu.branches)
    inv = "inv_sqrt_2pi = 0.3989422804014327"
    assert honest.count(inv) == 2
    module, restamp = _forge(cache, honest, honest.replace(inv, "inv_sqrt_2pi = 2.0"), key)
    assert module.c_direct is not None
    _jit._MODULES[key] = module
    assert elu.c_map(0.35) > 1.0                      # the forged kernel, compiled and saved
    restamp()
    _jit._MODULES.clear()
    activations._MEMO.clear()
    fresh = ks.activation("elu")     # a new object: no memo of the first one's maps
    with pytest.warns(CacheWarning, match="cached machine code of c_direct"):
        assert fresh.c_map(0.35) == pytest.approx(ELU_C_035, rel=1e-13)


# -- directories someone else controls (point 2) ---------------------------------------------
def _plant(directory, tmp_path):
    """A module under the name kernelshape will look for, which writes a marker file."""
    probe = tmp_path / "probe-cache"
    os.environ["KERNELSHAPE_CACHE_DIR"] = str(probe)
    values()
    (genuine,) = _module_files(probe)
    marker = tmp_path / "pwned"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / genuine.name).write_text(
        f"open({str(marker)!r}, 'w').close()\n" + genuine.read_text())
    _jit._MODULES.clear()
    return marker


def _unwritable_configured(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("KERNELSHAPE_CACHE_DIR", str(blocker / "cache"))


def test_fallback_owned_by_someone_else_is_refused(cache, tmp_path, monkeypatch):
    fallback = Path(tempfile.gettempdir()) / f"kernelshape-{os.getuid()}"
    marker = _plant(fallback, tmp_path)
    for p in (fallback, *fallback.iterdir()):
        os.chown(p, 65534, 65534)
        os.chmod(p, 0o777)
    _unwritable_configured(tmp_path, monkeypatch)
    with pytest.warns(CacheWarning) as record:
        np.testing.assert_allclose(values(), EXPECTED, rtol=1e-15)
    assert not marker.exists()
    text = " ".join(str(w.message) for w in record)
    assert "owned by uid 65534" in text and "compiled in memory" in text


def test_fallback_symlink_is_refused(cache, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    marker = _plant(elsewhere, tmp_path)
    os.symlink(elsewhere, Path(tempfile.gettempdir()) / f"kernelshape-{os.getuid()}")
    _unwritable_configured(tmp_path, monkeypatch)
    with pytest.warns(CacheWarning) as record:
        np.testing.assert_allclose(values(), EXPECTED, rtol=1e-15)
    assert not marker.exists()
    assert any(f"kernelshape-{os.getuid()} for its numba cache either (not a directory"
               in str(w.message) for w in record)


@pytest.mark.parametrize("owner, mode, reason", [
    (None, 0o777, "writable by group or others"),
    (None, 0o775, "writable by group or others"),
    (65534, 0o755, "owned by uid 65534"),
])
def test_configured_dir_others_can_write_is_refused(cache, tmp_path, owner, mode, reason):
    marker = _plant(cache, tmp_path)
    os.environ["KERNELSHAPE_CACHE_DIR"] = str(cache)
    os.chmod(cache, mode)
    if owner is not None:
        os.chown(cache, owner, owner)
    with pytest.warns(CacheWarning) as record:
        np.testing.assert_allclose(values(), EXPECTED, rtol=1e-15)
    assert not marker.exists()
    text = " ".join(str(w.message) for w in record)
    assert reason in text and "instead of" in text   # the private fallback took over
    assert _module_files(Path(tempfile.gettempdir()) / f"kernelshape-{os.getuid()}")


def test_numba_entries_others_can_write_are_not_loaded(cache):
    values()
    for entry in _entries(cache, ".nbc"):
        os.chmod(entry, 0o666)
    with pytest.warns(CacheWarning, match="writable by group or others"):
        np.testing.assert_allclose(values(), EXPECTED, rtol=1e-15)


# -- full and read-only disks (point 8) ------------------------------------------------------
def _failing_writes(monkeypatch, under, code, *, partial):
    """Writes to files below ``under`` fail with ``code`` (after writing part of the data
    when ``partial``: a disk filling up mid-file); reads and other paths are untouched."""
    under = str(under)
    real_open, real_os_open = io.open, os.open

    def name_of(file):
        if isinstance(file, int):
            return os.readlink(f"/proc/self/fd/{file}")
        return os.fspath(file)

    class Full(io.RawIOBase):
        def __init__(self, inner):
            self._inner, self.name = inner, getattr(inner, "name", None)

        def write(self, data):
            if partial:
                self._inner.write(bytes(data)[: len(data) // 2])
            raise OSError(code, os.strerror(code))

        def writable(self):
            return True

        def close(self):
            self._inner.close()
            super().close()

    def fake_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        if any(m in mode for m in "wax+") and name_of(file).startswith(under):
            return Full(f)
        return f

    def fake_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR) and os.fspath(path).startswith(under) and not \
                partial:
            raise OSError(code, os.strerror(code), os.fspath(path))
        return real_os_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)


def test_full_disk_for_the_module_compiles_in_memory(cache, monkeypatch):
    cache.mkdir(mode=0o700)
    (cache / "__pycache__").mkdir(mode=0o700)
    _failing_writes(monkeypatch, cache / "_kernelshape_jit_", errno.ENOSPC, partial=True)
    with pytest.warns(CacheWarning, match="No space left on device.*compiled in memory"):
        np.testing.assert_allclose(values(), EXPECTED, rtol=1e-15)
    assert _leftovers(cache) == []
    assert _module_files(cache) == []


def test_full_disk_for_machine_code_keeps_it_in_memory(cache, monkeypatch):
    values()
    for entry in (cache / "__pycache__").iterdir():
        entry.unlink()
    _failing_writes(monkeypatch, cache / "__pycache__", errno.ENOSPC, partial=True)
    with pytest.warns(CacheWarning, match="No space left on device.*in memory"):
        np.testing.assert_allclose(values(), EXPECTED, rtol=1e-15)
    assert _leftovers(cache) == []
    assert not list((cache / "__pycache__").glob("*.nbi"))   # no index without its data


def test_read_only_cache_falls_back_and_writes_nothing_elsewhere(cache, monkeypatch, tmp_path):
    """A read-only ``__pycache__``: numba alone would cache in NUMBA_CACHE_DIR or
    ~/.cache/numba, unchecked; kernelshape takes its private fallback instead."""
    import numba.core.config
    stray = tmp_path / "numba-elsewhere"
    monkeypatch.setattr(numba.core.config, "CACHE_DIR", str(stray))
    values()
    for entry in (cache / "__pycache__").iterdir():
        entry.unlink()
    _forget_warnings(monkeypatch)
    _failing_writes(monkeypatch, cache / "__pycache__", errno.EROFS, partial=False)
    with pytest.warns(CacheWarning) as record:
        np.testing.assert_allclose(values(), EXPECTED, rtol=1e-15)
    text = " ".join(str(w.message) for w in record)
    assert "Read-only file system" in text and "instead of" in text
    assert not stray.exists() or not any(stray.rglob("*.nb?"))
    fallback = Path(tempfile.gettempdir()) / f"kernelshape-{os.getuid()}"
    assert list((fallback / "__pycache__").glob("*.nbi"))


def test_stale_temporaries_of_killed_processes_are_swept(cache):
    cache.mkdir(mode=0o700)
    (cache / "__pycache__").mkdir(mode=0o700)
    stale = [cache / "_kernelshape_jit_0123.py.4242.tmp",
             cache / "__pycache__" / "_kernelshape_jit_0123.evaluate-5.py311.nbi.tmp.ab12"]
    recent = cache / "_kernelshape_jit_4567.py.4343.tmp"   # maybe still being written
    for p in (*stale, recent):
        p.write_bytes(b"half a file")
    for p in stale:
        os.utime(p, (1e9, 1e9))
    np.testing.assert_allclose(values(), EXPECTED, rtol=1e-15)
    assert not any(p.exists() for p in stale) and recent.exists()
