"""Checks of the command line's options: nothing a user types is silently ignored.

An option the chosen command or method would not use is refused with one line naming it
(issue 13); unknown names in an activation get suggestions phrased for the command line.
Used by :mod:`kernelshape.cli` only.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake on the command line: printed as one line, exit status 2."""


def given(args, *names):
    """The command-line spellings of the options in ``names`` that the user gave."""
    return ["--" + n.replace("_", "-") for n in names if getattr(args, n, None) is not None]


def refuse(options, why):
    """Raise naming ``options`` (spellings from :func:`given`) when there are any."""
    if options:
        raise UserError(f"{' and '.join(options)} {'has' if len(options) == 1 else 'have'} "
                        f"no effect {why}")


def check_network_options(args):
    if args.shortcut_weight is not None and args.resnet is None:
        raise UserError("--shortcut-weight needs --resnet DEPTH (an --mlp has no shortcuts)")


def check_solve_options(args):
    """Refuse options the chosen method would ignore; fill in the documented defaults."""
    check_network_options(args)
    if args.method == "eoc":
        refuse(given(args, "zeta", "q_slope", "tau", "eta", "digits", "mlp", "resnet",
                     "shortcut_weight"),
               "with --method eoc (it analyses one layer at --sigma-b / --sigma-w)")
    else:
        refuse(given(args, "sigma_b", "sigma_w"),
               f"with --method {args.method} (edge-of-chaos options: use --method eoc)")
        if args.method == "dks":
            refuse(given(args, "tau", "eta"),
                   "with --method dks (TAT targets: use --method tat)")
        else:
            refuse(given(args, "zeta", "q_slope"),
                   "with --method tat (DKS targets: use --method dks)")
            if args.tau is not None and args.eta is not None:
                raise UserError("give --tau (smooth activations) or --eta (leaky ReLU), "
                                "not both")
    if args.output is not None and args.emit is None:
        raise UserError("-o/--output names the file for generated code: add --emit "
                        "numpy|jax|torch" + (" (with --method dks or tat)"
                                             if args.method == "eoc" else ""))
    args.zeta = 1.5 if args.zeta is None else args.zeta
    args.q_slope = 1.0 if args.q_slope is None else args.q_slope
    args.sigma_b = 0.0 if args.sigma_b is None else args.sigma_b


def unknown_name_message(err, text):
    """The parser's unknown-name error, phrased for the command line with suggestions.

    The library's message tells Python users to declare parameters with ``parameters=``;
    on the command line a parameter is fixed with ``--param NAME=VALUE``.
    """
    import difflib
    import re

    from . import builtins
    name = getattr(err, "name", None)
    if not name:
        found = re.search(r"unknown name '([^']+)'", str(err))
        name = found.group(1) if found else None
    if not name:
        return str(err)
    suggestions = list(getattr(err, "suggestions", None) or
                       difflib.get_close_matches(name, builtins(), n=3, cutoff=0.6))
    where = "" if name == text.strip() else f" in {text!r}"
    hint = (f"; did you mean {' or '.join(suggestions)}?" if suggestions
            else "; `kernelshape list` shows the built-in activations")
    return (f"unknown name {name!r}{where}{hint} (the variable is x; fix a parameter with "
            "--param NAME=VALUE)")
