"""Regenerate the figures of ``figures/``: ``kernelshape figures``, ``python -m kernelshape.figures``.

Each figure is one small script ``figures/<name>.py`` that uses only the public API and
defines ``figure() -> Figure`` (saved as ``<outdir>/<name>.png`` at the script's ``DPI``,
default 100) or, for a script that writes its own output, ``save(outdir) -> Path``. Scripts
also run on their own (``python figures/<name>.py``) through :func:`run_script`. This
module finds the scripts of a source checkout and runs them; the committed PNGs are their
output. The command line writes to ``./kernelshape-figures/`` (:data:`DEFAULT_OUTDIR`) unless
told otherwise, so running it from a checkout never overwrites the tracked figures by
accident; ``--update-checkout`` regenerates them on purpose. The training figure runs the example
``examples/train_deep.py`` (about half an hour on two cores); the others take seconds.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .errors import DomainError, UnsupportedError

__all__ = ["DEFAULT_OUTDIR", "FIGURES_DIR", "available", "build", "build_all", "main",
           "run_script"]

#: The ``figures/`` directory of the source checkout this package was imported from.
FIGURES_DIR = Path(__file__).resolve().parents[1] / "figures"
#: Where the command lines write figures unless given a directory (relative to the cwd).
DEFAULT_OUTDIR = "kernelshape-figures"


def _scripts(directory: Path) -> dict[str, Path]:
    if not directory.is_dir():
        raise UnsupportedError(
            f"no figure scripts at {directory}: the figures are regenerated from a source "
            "checkout of kernelshape (its figures/ directory), not from an installed wheel")
    return {p.stem: p for p in sorted(directory.glob("*.py")) if not p.stem.startswith("_")}


def available(*, directory: Path | None = None) -> tuple[str, ...]:
    """Names of the figure scripts (file stems, sorted).

    Example:
        >>> "eoc_phase_tanh" in available()
        True
    """
    return tuple(_scripts(Path(directory) if directory else FIGURES_DIR))


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"kernelshape_figure_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module       # dataclasses and pickling look modules up there
    spec.loader.exec_module(module)
    if not callable(getattr(module, "save", None)) and not callable(getattr(module, "figure",
                                                                             None)):
        raise UnsupportedError(f"figure script {path} defines neither figure() nor save(outdir)")
    return module


def _save(module, name: str, out: Path) -> Path:
    if callable(getattr(module, "save", None)):
        return Path(module.save(out))
    path = out / f"{name}.png"
    module.figure().savefig(path, dpi=getattr(module, "DPI", 100))
    return path


def build(name: str, *, outdir: Path | str | None = None,
          directory: Path | None = None) -> Path:
    """Run one figure script; returns the PNG it wrote.

    Args:
        name: a name from :func:`available`.
        outdir: where to write (default: the ``figures/`` directory itself).
        directory: where the scripts are (default :data:`FIGURES_DIR`).

    Raises:
        DomainError: unknown name (the message lists the valid ones).
        UnsupportedError: no scripts directory (installed package without the sources).
    """
    scripts = _scripts(Path(directory) if directory else FIGURES_DIR)
    if name not in scripts:
        raise DomainError(f"unknown figure {name!r}; available: {', '.join(scripts)}")
    import matplotlib
    matplotlib.use("Agg")
    out = Path(outdir) if outdir is not None else scripts[name].parent
    out.mkdir(parents=True, exist_ok=True)
    return _save(_load(scripts[name]), name, out)


def run_script(path: str | Path) -> None:
    """``python figures/<name>.py``: build that figure next to the script and print its path."""
    path = Path(path).resolve()
    print(build(path.stem, directory=path.parent))


def build_all(*, only: Sequence[str] | None = None, outdir: Path | str | None = None,
              directory: Path | None = None, verbose: bool = False) -> list[Path]:
    """Regenerate every figure (or those named in ``only``); returns the written paths.

    Example (not run here: it trains networks for minutes)::

        build_all(only=["eoc_phase_tanh"], outdir="/tmp/figs")
    """
    names = available(directory=directory)
    wanted = list(names) if not only else list(dict.fromkeys(only))
    unknown = [n for n in wanted if n not in names]
    if unknown:
        raise DomainError(f"unknown figures {unknown}; available: {', '.join(names)}")
    paths = []
    for name in wanted:
        start = time.perf_counter()
        paths.append(build(name, outdir=outdir, directory=directory))
        if verbose:
            print(f"{name}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kernelshape.figures [--only NAME ...] [-o DIR | --update-checkout] [--list]``.
    """
    import argparse
    parser = argparse.ArgumentParser(prog="python -m kernelshape.figures",
                                     description="build the figures of figures/")
    parser.add_argument("--only", nargs="+", default=None, help="names of figures to build")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("-o", "--outdir", default=DEFAULT_OUTDIR,
                       help=f"where to write (default: ./{DEFAULT_OUTDIR})")
    where.add_argument("--update-checkout", action="store_true",
                       help="overwrite the tracked PNGs in figures/")
    parser.add_argument("--list", action="store_true", help="list the figure names")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(available()))
        return 0
    outdir = None if args.update_checkout else args.outdir
    for path in build_all(only=args.only, outdir=outdir, verbose=True):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
