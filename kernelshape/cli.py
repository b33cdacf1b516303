"""The ``kernelshape`` command line.

Subcommands: ``list``, ``maps``, ``solve``, ``plot``, ``figures``, ``demo``. User errors print
one line on stderr and exit with status 2 (no traceback); ``--json`` gives machine-readable
output with stable keys (``dks``'s parameter names).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from ._cli_options import UserError as _UserError
from ._cli_options import check_network_options as _check_network_options
from ._cli_options import check_solve_options as _check_solve_options
from ._cli_options import given as _given
from ._cli_options import refuse as _refuse
from ._cli_options import unknown_name_message as _unknown_name_message

__all__ = ["build_parser", "main"]

_EXAMPLES = {
    "list": "examples:\n  kernelshape list\n  kernelshape list --json",
    "maps": ("examples:\n  kernelshape maps tanh --c -1 0 0.5 1\n"
             "  kernelshape maps relu --q 0.5 1 2 --order 1\n"
             "  kernelshape maps 'x*tanh(softplus(x))' --c 0.3 --digits 40"),
    "solve": ("examples:\n  kernelshape solve tanh --method dks --resnet 101 --shortcut-weight 0.6\n"
              "  kernelshape solve softplus --method tat --tau 0.3 --mlp 50 --emit torch -o act.py\n"
              "  kernelshape solve leaky_relu --method tat --eta 0.9 --mlp 50 --json\n"
              "  kernelshape solve tanh --method eoc --sigma-b 0.2236"),
    "plot": ("examples:\n  kernelshape plot degeneration tanh --mlp 100 -o tanh_depth.png\n"
             "  kernelshape plot cmap softplus -o softplus_c.png"),
    "figures": ("examples:\n  kernelshape figures\n"
                "  kernelshape figures --only eoc_phase_tanh -o figs/\n"
                "  kernelshape figures --update-checkout"),
    "demo": "examples:\n  kernelshape demo\n  kernelshape demo -o out/",
}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``kernelshape CMD: error: ...``) and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for docs and tests)."""
    parser = _Parser(
        prog="kernelshape",
        description="Kernel theory of deep networks at initialization: Q/C maps, "
                    "DKS / TAT / edge-of-chaos solves, code generation, plots.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    from . import __version__
    from .figures import DEFAULT_OUTDIR as FIGURES_OUTDIR
    parser.add_argument("--version", action="version", version=f"kernelshape {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name, help_text):
        return sub.add_parser(name, help=help_text, description=help_text,
                              epilog=_EXAMPLES[name],
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    p = add("list", "list the built-in activations with their formulas")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("maps", "table of Q / C map values of an activation")
    p.add_argument("activation", metavar="ACT", help="built-in name or expression in x")
    p.add_argument("--q", type=float, nargs="+", default=[1.0], help="q values (default 1)")
    p.add_argument("--c", type=float, nargs="+", default=None,
                   help="c values for the C map (default -1 -0.5 0 0.5 1)")
    p.add_argument("--order", type=int, default=0, choices=(0, 1, 2),
                   help="derivative order (0: map, 1: first derivative, 2: second)")
    p.add_argument("--digits", type=int, default=None,
                   help="mpmath route with this many significant digits")
    _param_option(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("solve", "solve a DKS / TAT / edge-of-chaos transform")
    p.add_argument("activation", metavar="ACT", help="built-in name or expression in x")
    p.add_argument("--method", choices=("dks", "tat", "eoc"), default="dks")
    # Targets default to None so that an option given to a method that does not use it is
    # reported (see _check_solve_options) instead of silently ignored.
    p.add_argument("--zeta", type=float, default=None, help="DKS global slope target (1.5)")
    p.add_argument("--q-slope", type=float, default=None, help="DKS Q'(1) target (1.0)")
    p.add_argument("--tau", type=float, default=None, help="TAT curvature target, smooth "
                   "activations (0.3)")
    p.add_argument("--eta", type=float, default=None, help="TAT leaky ReLU C(0) target (0.9)")
    p.add_argument("--sigma-b", type=float, default=None,
                   help="EOC bias standard deviation (0)")
    p.add_argument("--sigma-w", type=float, default=None,
                   help="EOC: analyse this sigma_w instead of solving for the edge of chaos")
    _network_options(p)
    p.add_argument("--digits", type=int, default=None,
                   help="DKS / TAT: solve in mpmath to N digits")
    p.add_argument("--emit", choices=("numpy", "jax", "torch"), default=None,
                   help="also generate standalone code for this framework")
    p.add_argument("-o", "--output", default=None,
                   help="file for the --emit code (default stdout)")
    _param_option(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("plot", "draw a figure to a file")
    p.add_argument("kind", choices=("degeneration", "cmap", "qmap", "phase"),
                   help="degeneration: network C map vs depth (untransformed/EOC/DKS/TAT); "
                        "cmap / qmap: one activation's maps; phase: EOC phase diagram")
    p.add_argument("activation", metavar="ACT", help="built-in name or expression in x")
    _network_options(p, only="degeneration")
    _param_option(p)
    p.add_argument("-o", "--output", required=True, help="image file (png, pdf, svg)")

    p = add("figures", "build the figures of figures/ (into ./kernelshape-figures/)")
    p.add_argument("--only", nargs="+", default=None, metavar="NAME",
                   help="names of figures to build (default: all)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("-o", "--outdir", default=None,
                       help=f"where to write (default: ./{FIGURES_OUTDIR})")
    where.add_argument("--update-checkout", action="store_true",
                       help="overwrite the tracked PNGs in the checkout's figures/ directory "
                            "(for maintainers regenerating the committed figures)")

    p = add("demo", "the main job: DKS and TAT solves, plots and generated code")
    p.add_argument("-o", "--outdir", default="kernelshape-demo", help="output directory")
    return parser


def _param_option(p):
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="fix an activation parameter, e.g. --param negative_slope=0.2")


def _network_options(p, only=None):
    tail = f" ({only} only)" if only else ""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--mlp", type=int, metavar="DEPTH", default=None,
                   help=f"a chain of DEPTH nonlinear layers (default: --mlp 50){tail}")
    g.add_argument("--resnet", type=int, metavar="DEPTH", default=None,
                   choices=(18, 34, 50, 101, 152, 200),
                   help=f"the dks modified ResNet{tail}")
    p.add_argument("--shortcut-weight", type=float, default=None,
                   help="ResNet shortcut weight, with --resnet (default 0 = vanilla, no skip "
                        "connections)")


def _activation(args):
    from . import activation
    from .errors import UnknownNameError
    values = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep:
            raise _UserError(f"--param expects NAME=VALUE, got {item!r}")
        try:
            values[name.strip()] = float(value)
        except ValueError as err:
            raise _UserError(f"--param {name}: expected a number, got {value!r}") from err
    try:
        return activation(args.activation, **values)
    except UnknownNameError as err:
        raise _UserError(_unknown_name_message(err, args.activation)) from err


def _network(args):
    from .networks import mlp, resnet
    if args.resnet is not None:
        return resnet(args.resnet, shortcut_weight=args.shortcut_weight or 0.0)
    return mlp(args.mlp if args.mlp is not None else 50)


def _fmt(v, digits=None) -> str:
    """Shortest round-trip text of a float, or ``digits`` significant digits of an mpf."""
    if hasattr(v, "_mpf_"):
        import mpmath
        if mpmath.isinf(v):
            return "inf" if v > 0 else "-inf"
        # a maps PreciseValue may hold fewer digits than asked for: show only those
        held, digits = getattr(v, "digits", None), digits or mpmath.mp.dps
        if held is not None:
            digits = min(digits, max(held, 1))
        return mpmath.nstr(v, digits, strip_zeros=False)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return repr(f)


def _table(rows, header) -> str:
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(line.rstrip() for line in out)


def _cmd_list(args):
    from .activations import BUILTIN_FORMULAS
    if args.json:
        print(json.dumps(BUILTIN_FORMULAS, indent=2, sort_keys=True))
    else:
        print(_table(sorted(BUILTIN_FORMULAS.items()), ["name", "phi(x)"]))


def _cmd_maps(args):
    phi = _activation(args)
    cs = args.c if args.c is not None else [-1.0, -0.5, 0.0, 0.5, 1.0]
    rows, records = [], []
    progress = _Progress(len(args.q) * len(cs), "mpmath maps", enabled=bool(args.digits))
    for q in args.q:
        qv = phi.q_map(q, order=args.order, digits=args.digits)
        for c in cs:
            cv = phi.c_map(c, q=q, order=args.order, digits=args.digits)
            progress.step()
            rows.append([_fmt(q), _fmt(qv, args.digits), _fmt(c), _fmt(cv, args.digits)])
            records.append({"q": q, "q_map": _json_number(qv, args.digits), "c": c,
                            "c_map": _json_number(cv, args.digits)})
    progress.close()
    prime = "'" * args.order
    if args.json:
        print(json.dumps({"activation": str(phi.expr), "order": args.order,
                          "digits": args.digits, "values": records}, indent=2))
    else:
        prec = f"{args.digits} digits (mpmath)" if args.digits else "float64 (~1e-13 relative)"
        print(f"phi(x) = {phi.expr}    order {args.order}, {prec}")
        print(_table(rows, ["q", f"Q{prime}(q)", "c", f"C{prime}(c; q)"]))


def _cmd_solve(args):
    from . import transforms
    _check_solve_options(args)
    phi = _activation(args)
    if args.method == "eoc" and args.emit:
        raise _UserError("--emit needs a DKS or TAT transform; --method eoc has no activation "
                         "transform to generate code for")
    if args.method == "eoc":
        result = transforms.eoc(phi, sigma_b=args.sigma_b, sigma_w=args.sigma_w)
        data = {k: _jsonable(v) for k, v in vars(result).items()} if not hasattr(
            result, "to_dict") else result.to_dict()
        if args.json:
            print(json.dumps(data, indent=2))
        else:
            print(_table([[k, _fmt(v)] for k, v in data.items()], ["quantity", "value"]))
        return
    net = _network(args)
    label = f"solving {args.method.upper()} in mpmath to {args.digits} digits"
    with _Spinner(label, enabled=bool(args.digits)):
        if args.method == "dks":
            t = transforms.dks(phi, network=net, zeta=args.zeta, q_slope=args.q_slope,
                               digits=args.digits)
        elif args.eta is not None or (args.tau is None and "negative_slope" in phi.parameters):
            t = transforms.tat(phi, network=net, eta=args.eta if args.eta is not None else 0.9,
                               digits=args.digits)
        else:
            t = transforms.tat(phi, network=net, tau=args.tau if args.tau is not None else 0.3,
                               digits=args.digits)
    if args.emit:
        from . import codegen
        src = codegen.emit(t, args.emit)
        if args.output:
            _write_text(Path(args.output), src)
        elif not args.json:
            print(src)
    if args.json:
        out = t.to_dict()
        if args.emit and not args.output:
            out["code"] = src
        print(json.dumps(out, indent=2))
    else:
        _print_transform(t)
        if args.emit and args.output:
            print(f"wrote {args.emit} code to {args.output}")


class _Progress:
    """A one-line progress bar on stderr for long work (only when stderr is a terminal)."""

    def __init__(self, total: int, label: str, *, enabled: bool = True):
        self.total, self.label, self.done = total, label, 0
        self.enabled = enabled and total > 1 and sys.stderr.isatty()

    def step(self) -> None:
        self.done += 1
        if self.enabled:
            width = 30
            filled = int(width * self.done / self.total)
            sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
                             f"{self.done}/{self.total}")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


class _Spinner:
    """Elapsed-time progress on stderr for long work of unknown length (terminals only)."""

    def __init__(self, label: str, *, enabled: bool = True):
        self.label = label
        self.enabled = enabled and sys.stderr.isatty()
        self._stop = None

    def __enter__(self):
        if self.enabled:
            import threading
            import time
            self._stop = threading.Event()
            start = time.perf_counter()

            def run():
                frames = "|/-\\"
                i = 0
                while not self._stop.wait(0.2):
                    sys.stderr.write(f"\r{self.label} {frames[i % 4]} "
                                     f"{time.perf_counter() - start:5.1f} s")
                    sys.stderr.flush()
                    i += 1
            self._thread = threading.Thread(target=run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._stop is not None:
            self._stop.set()
            self._thread.join()
            sys.stderr.write("\r" + " " * (len(self.label) + 12) + "\r")
            sys.stderr.flush()
        return False


def _write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as err:
        raise _UserError(f"cannot write {path}: {err.strerror or err}") from err


def _output_dir(path: str | Path) -> Path:
    """``path`` as a directory that exists and takes files, or a one-line user error."""
    import os
    import tempfile
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        # A directory can exist and still refuse files (read-only mounts, /proc, ...).
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise _UserError(f"cannot write to {path}{os.sep}: {err.strerror or err}") from err
    return path


def _print_transform(t):
    prec = f"{t.digits} digits" if t.digits else "float64"
    print(f"{t.method.upper()} for phi(x) = {t.base.expr} on {t.network}  ({prec})")
    # every digit the solve carries (mpf values print t.digits significant digits)
    d = t.digits
    print("targets: " + ", ".join(f"{k} = {_fmt(v, d)}" for k, v in t.targets.items()))
    print(_table([[k, _fmt(v, d)] for k, v in t.params.items()], ["parameter", "value"]))
    print(_table([[r.condition, _fmt(r.target, d), _fmt(r.achieved, d), f"{r.difference:.2e}"]
                  for r in t.residuals], ["condition", "target", "achieved", "|difference|"]))


def _json_number(v, digits):
    """float64 values as JSON numbers (inf as the string "inf"); mpf values as decimal text."""
    if digits:
        return _fmt(v, digits)
    f = float(v)
    return f if math.isfinite(f) else _fmt(f)


def _jsonable(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


def _cmd_plot(args):
    from . import plot
    _check_network_options(args)
    if args.kind != "degeneration":
        _refuse(_given(args, "mlp", "resnet", "shortcut_weight"),
                f"on a {args.kind} plot (network options are for degeneration)")
    phi = _activation(args)
    with _Spinner(f"computing the {args.kind} sweep"):
        if args.kind == "degeneration":
            fig = plot.degeneration(phi, network=_network(args))
        elif args.kind == "cmap":
            fig = plot.c_map(phi)
        elif args.kind == "qmap":
            fig = plot.q_map(phi)
        else:
            fig = plot.eoc_phase(phi)
    try:
        fig.savefig(args.output, dpi=120, bbox_inches="tight")
    except (OSError, ValueError) as err:
        raise _UserError(f"cannot write {args.output}: {getattr(err, 'strerror', None) or err}"
                         ) from err
    print(f"wrote {args.output}")


def _cmd_figures(args):
    from . import figures
    if args.update_checkout:
        outdir = None                      # next to the scripts: the tracked figures
    else:
        outdir = _output_dir(args.outdir if args.outdir is not None
                             else figures.DEFAULT_OUTDIR)
    try:
        for path in figures.build_all(only=args.only, outdir=outdir):
            print(f"wrote {path}")
    except OSError as err:
        raise _UserError(_os_error_text(err)) from err


def _cmd_demo(args):
    from .demo import run
    outdir = _output_dir(args.outdir)
    try:
        run(outdir, report=_print_transform)
    except OSError as err:       # a disk that fills up or a directory removed mid-run
        raise _UserError(_os_error_text(err)) from err


def _os_error_text(err: OSError) -> str:
    return f"cannot write {err.filename or 'output'}: {err.strerror or err}"


_COMMANDS = {"list": _cmd_list, "maps": _cmd_maps, "solve": _cmd_solve, "plot": _cmd_plot,
             "figures": _cmd_figures, "demo": _cmd_demo}


def main(argv=None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 user error)."""
    from .errors import KernelShapeError
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        _COMMANDS[args.command](args)
    except (KernelShapeError, _UserError) as err:
        print(f"kernelshape {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    return 0
