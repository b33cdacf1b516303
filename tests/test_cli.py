"""The command line: list, maps, solve (dks / tat / eoc), --json, --emit, errors, --help.

Commands run in-process through ``kernelshape.cli.main([...])`` (fast; output captured with
capsys); one subprocess run checks ``python -m kernelshape``. Expected numbers come from
closed forms (THEORY.md §1, §3, §5) or from the library's own API called directly, which
checks that the command line passes its options through unchanged.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import mpmath
import pytest

import kernelshape as ks
from kernelshape import cli
from kernelshape.cli import build_parser, main

SUBCOMMANDS = ("list", "maps", "solve", "plot", "figures", "demo")
PARAM_KEYS = {"input_scale", "input_shift", "output_shift", "output_scale"}
TRANSFORM_KEYS = {"method", "base", "params", "targets", "network", "residuals", "digits"}


def run(capsys, *argv):
    """``main(argv)`` -> (exit status, stdout, stderr); argparse exits become statuses."""
    try:
        status = main(list(argv))
    except SystemExit as exc:
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


def run_json(capsys, *argv):
    status, out, err = run(capsys, *argv, "--json")
    assert status == 0, err
    return json.loads(out)


def relu_c(c):
    # THEORY.md §1: ReLU's C map at q = 1.
    return (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c) / math.pi


# -- list ------------------------------------------------------------------------------------
def test_list_table_names_every_builtin(capsys):
    status, out, err = run(capsys, "list")
    assert status == 0 and not err
    names = {line.split()[0] for line in out.splitlines()[2:] if line.strip()}
    assert names == set(ks.builtins())
    assert "tanh(x)" in out


def test_list_json_maps_names_to_formulas(capsys):
    data = run_json(capsys, "list")
    assert set(data) == set(ks.builtins())
    # Each formula is text the safe parser reads back to the built-in's expression.
    assert ks.activation(data["softplus"]).expr == ks.activation("softplus").expr


# -- maps ------------------------------------------------------------------------------------
def test_maps_json_keys_and_relu_closed_form(capsys):
    data = run_json(capsys, "maps", "relu", "--c", "-0.5", "0", "0.5", "1")
    assert set(data) == {"activation", "order", "digits", "values"}
    assert data["order"] == 0 and data["digits"] is None
    assert [set(v) for v in data["values"]] == [{"q", "q_map", "c", "c_map"}] * 4
    for record in data["values"]:
        assert record["q"] == 1.0
        assert float(record["q_map"]) == pytest.approx(0.5, rel=1e-13)  # Q(q) = q/2
        # float64 route, 1e-13 relative (STYLE.md), absolute near zero
        assert float(record["c_map"]) == pytest.approx(relu_c(record["c"]), rel=1e-13, abs=1e-15)


def test_maps_table_for_people(capsys):
    status, out, err = run(capsys, "maps", "tanh", "--q", "1", "2", "--c", "0", "1")
    assert status == 0 and not err
    lines = out.splitlines()
    assert lines[0].startswith("phi(x) = tanh(x)")
    assert lines[1].split() == ["q", "Q(q)", "c", "C(c;", "q)"]
    assert len(lines) == 3 + 4  # title, header, rule, 2 q x 2 c rows


def test_maps_first_derivative_of_relu(capsys):
    # C'(c) of ReLU is (pi - arccos c) / pi; Q'(q) = 1/2 (THEORY.md §1).
    data = run_json(capsys, "maps", "relu", "--order", "1", "--q", "2", "--c", "0.25")
    (record,) = data["values"]
    assert float(record["q_map"]) == pytest.approx(0.5, rel=1e-13)
    assert float(record["c_map"]) == pytest.approx((math.pi - math.acos(0.25)) / math.pi,
                                                   rel=1e-13)


def test_maps_second_derivative_of_relu_is_infinite_at_one(capsys):
    status, out, err = run(capsys, "maps", "relu", "--order", "2", "--c", "1")
    assert status == 0, err
    assert out.splitlines()[-1].split()[-1] == "inf"


def test_maps_digits_route(capsys):
    # ReLU C(0) = 1/pi (closed form), asked for 30 digits: agreement to 10^-(30-5) (STYLE.md).
    data = run_json(capsys, "maps", "relu", "--c", "0", "--digits", "30")
    assert data["digits"] == 30
    with mpmath.workdps(40):
        got = mpmath.mpf(data["values"][0]["c_map"])
        assert abs(got - 1 / mpmath.pi) < mpmath.mpf(10) ** -25


def test_maps_expression_and_param(capsys):
    # leaky ReLU with slope a: Q(1) = (1 + a^2) / 2 (THEORY.md §1).
    data = run_json(capsys, "maps", "leaky_relu", "--param", "negative_slope=0.2", "--c", "0")
    assert float(data["values"][0]["q_map"]) == pytest.approx((1 + 0.04) / 2, rel=1e-13)
    data = run_json(capsys, "maps", "x*tanh(softplus(x))", "--c", "1")
    assert float(data["values"][0]["c_map"]) == pytest.approx(1.0, rel=1e-13)


# -- solve -----------------------------------------------------------------------------------
def test_solve_dks_json(capsys):
    data = run_json(capsys, "solve", "tanh", "--method", "dks", "--mlp", "10", "--zeta", "1.5")
    assert set(data) == TRANSFORM_KEYS
    assert data["method"] == "dks"
    assert set(data["params"]) == PARAM_KEYS
    assert data["targets"]["zeta"] == 1.5
    # Chain of 10 nonlinear layers: mu(xi) = xi^10, so xi = zeta^(1/10) (THEORY.md §2).
    assert data["targets"]["xi"] == pytest.approx(1.5 ** 0.1, rel=1e-14)
    for r in data["residuals"]:
        assert set(r) == {"condition", "target", "achieved"}
        assert abs(r["achieved"] - r["target"]) < 1e-12
    # The same as the library called directly (the CLI passes its options through).
    t = ks.dks(ks.activation("tanh"), network=ks.mlp(10), zeta=1.5)
    assert data["params"] == {k: float(v) for k, v in t.params.items()}
    # And the parameters really satisfy the DKS conditions (independent evaluation).
    act = ks.activation("tanh").affine(*(data["params"][k] for k in
                                         ("input_scale", "input_shift", "output_shift",
                                          "output_scale")))
    assert act.q_map(1.0) == pytest.approx(1.0, abs=1e-12)
    assert act.c_map(0.0) == pytest.approx(0.0, abs=1e-12)


def test_solve_dks_resnet_options_reach_the_network(capsys):
    data = run_json(capsys, "solve", "softplus", "--method", "dks", "--resnet", "50",
                    "--shortcut-weight", "0.6", "--zeta", "1.2", "--q-slope", "1.0")
    t = ks.dks(ks.activation("softplus"), network=ks.resnet(50, shortcut_weight=0.6), zeta=1.2)
    assert data["params"] == {k: float(v) for k, v in t.params.items()}
    assert data["network"] == t.network


def test_solve_dks_table(capsys):
    status, out, err = run(capsys, "solve", "tanh", "--method", "dks", "--mlp", "10")
    assert status == 0, err
    assert out.startswith("DKS for phi(x) = tanh(x)")
    for key in PARAM_KEYS:
        assert key in out
    assert "|difference|" in out


def test_solve_tat_smooth_json(capsys):
    data = run_json(capsys, "solve", "softplus", "--method", "tat", "--tau", "0.3", "--mlp", "20")
    assert set(data) == TRANSFORM_KEYS and data["method"] == "tat"
    assert set(data["params"]) == PARAM_KEYS
    assert data["targets"]["tau"] == 0.3
    assert max(abs(r["achieved"] - r["target"]) for r in data["residuals"]) < 1e-12


def test_solve_tat_leaky_relu_json(capsys):
    data = run_json(capsys, "solve", "leaky_relu", "--method", "tat", "--eta", "0.9",
                    "--mlp", "50")
    assert "negative_slope" in data["params"] and data["targets"]["eta"] == 0.9
    a = data["params"]["negative_slope"]
    assert 0 < a < 1
    # TAT leaky ReLU output scale sqrt(2 / (1 + a^2)) (THEORY.md §5).
    assert data["params"]["output_scale"] == pytest.approx(math.sqrt(2 / (1 + a * a)), rel=1e-14)


def test_solve_leaky_relu_defaults_to_eta(capsys):
    data = run_json(capsys, "solve", "leaky_relu", "--method", "tat", "--mlp", "50")
    assert data["targets"]["eta"] == 0.9  # dks's default c_val_0_target


def test_solve_eoc_relu(capsys):
    # ReLU edge of chaos: sigma_w^2 = 2 at sigma_b = 0 (THEORY.md §3).
    data = run_json(capsys, "solve", "relu", "--method", "eoc", "--sigma-b", "0")
    assert {"sigma_w", "sigma_b", "q_star", "chi_1"} <= set(data)
    assert float(data["sigma_w"]) == pytest.approx(math.sqrt(2), rel=1e-12)
    assert float(data["chi_1"]) == pytest.approx(1.0, rel=1e-12)


def test_solve_eoc_tanh_reference(capsys):
    # tanh, sigma_b^2 = 0.05: sigma_w^2 ~ 1.76095, q* ~ 0.57005 (THEORY.md §3, 6 digits).
    data = run_json(capsys, "solve", "tanh", "--method", "eoc", "--sigma-b", str(math.sqrt(0.05)))
    assert float(data["sigma_w"]) ** 2 == pytest.approx(1.76095, abs=5e-6)
    assert float(data["q_star"]) == pytest.approx(0.57005, abs=5e-6)


def test_solve_eoc_table(capsys):
    status, out, err = run(capsys, "solve", "relu", "--method", "eoc")
    assert status == 0, err
    assert "sigma_w" in out and "chi_1" in out


# -- --emit ----------------------------------------------------------------------------------
def test_emit_torch_to_file(capsys, tmp_path):
    path = tmp_path / "act.py"
    status, out, err = run(capsys, "solve", "softplus", "--method", "tat", "--mlp", "20",
                           "--emit", "torch", "-o", str(path))
    assert status == 0, err
    assert f"wrote torch code to {path}" in out
    source = path.read_text()
    assert "import torch" in source and "kernelshape" not in _imports(source)
    compile(source, str(path), "exec")


def test_emit_numpy_in_json(capsys):
    data = run_json(capsys, "solve", "tanh", "--method", "dks", "--mlp", "10", "--emit", "numpy")
    assert "import numpy as np" in data["code"]
    namespace: dict = {}
    exec(compile(data["code"], "<emitted>", "exec"), namespace)  # noqa: S102 - our own output
    act = ks.activation("tanh").affine(*(data["params"][k] for k in
                                         ("input_scale", "input_shift", "output_shift",
                                          "output_scale")))
    fn = next(v for k, v in namespace.items() if k.startswith("dks_") and callable(v)
              and not k.endswith("_grad"))
    assert float(fn(0.3)) == pytest.approx(float(act(0.3)), rel=1e-13)


def test_emit_to_stdout_prints_the_module(capsys):
    status, out, err = run(capsys, "solve", "tanh", "--method", "dks", "--mlp", "10",
                           "--emit", "jax")
    assert status == 0, err
    assert "import jax" in out


def _imports(source):
    return "\n".join(line for line in source.splitlines()
                     if line.startswith(("import ", "from ")))


# -- user errors -----------------------------------------------------------------------------
USER_ERRORS = {
    "unknown activation": (["maps", "nosuchthing"], "nosuchthing"),
    "unsafe expression": (["maps", "__import__('os').system('true')"], "__import__"),
    "c outside [-1, 1]": (["maps", "tanh", "--c", "1.5"], "1.5"),
    "q not positive": (["maps", "tanh", "--q", "-1"], "-1"),
    "digits < 1": (["maps", "tanh", "--digits", "0"], "0"),
    "free parameter": (["maps", "leaky_relu"], "negative_slope"),
    "param without value": (["maps", "tanh", "--param", "a"], "NAME=VALUE"),
    "param not a number": (["maps", "leaky_relu", "--param", "negative_slope=abc"], "abc"),
    "unknown param": (["maps", "tanh", "--param", "alpha=1"], "alpha"),
    "zeta <= 1": (["solve", "tanh", "--method", "dks", "--zeta", "0.5", "--mlp", "10"], "0.5"),
    "tau <= 0": (["solve", "tanh", "--method", "tat", "--tau", "-0.3", "--mlp", "10"], "-0.3"),
    "relu under tat": (["solve", "relu", "--method", "tat", "--mlp", "10"], "leaky"),
    "eta unreachable": (["solve", "leaky_relu", "--method", "tat", "--eta", "0.9",
                         "--mlp", "10"], "0.9"),
    "identity under dks": (["solve", "identity", "--method", "dks", "--mlp", "10"], ""),
    "unwritable --output": (["solve", "tanh", "--method", "dks", "--mlp", "10", "--emit",
                             "numpy", "-o", "/nonexistent-dir/sub/act.py"], "nonexistent-dir"),
    # issue 13 point 5: a misspelt name gets suggestions, not a Python-only hint
    "misspelt builtin": (["solve", "tahn"], "did you mean tanh"),
    # issue 14 point 6: unwritable output directories
    "unwritable demo dir": (["demo", "-o", "/proc/forbidden"], "/proc/forbidden"),
    "unwritable figures dir": (["figures", "--only", "c_maps", "-o", "/proc/forbidden"],
                               "/proc/forbidden"),
    "unwritable plot": (["plot", "cmap", "tanh", "-o", "/nonexistent-dir/c.png"],
                        "nonexistent-dir"),
}

# issue 13 point 4: an option the chosen command would not use is refused, never ignored.
IGNORED_OPTIONS = {
    "shortcut weight without resnet": (["solve", "tanh", "--shortcut-weight", "0.5"],
                                       "--shortcut-weight needs --resnet"),
    "shortcut weight with mlp": (["solve", "tanh", "--mlp", "20", "--shortcut-weight", "0.5"],
                                 "--shortcut-weight needs --resnet"),
    "tau under dks": (["solve", "tanh", "--tau", "0.3"], "--tau"),
    "eta under dks": (["solve", "leaky_relu", "--method", "dks", "--eta", "0.9"], "--eta"),
    "zeta under tat": (["solve", "softplus", "--method", "tat", "--zeta", "2"], "--zeta"),
    "q slope under tat": (["solve", "softplus", "--method", "tat", "--q-slope", "2"],
                          "--q-slope"),
    "tau and eta": (["solve", "leaky_relu", "--method", "tat", "--tau", "0.3", "--eta",
                     "0.9"], "not both"),
    "sigma-b under dks": (["solve", "tanh", "--sigma-b", "0.2"], "--sigma-b"),
    "sigma-w under tat": (["solve", "tanh", "--method", "tat", "--sigma-w", "1.2"],
                          "--sigma-w"),
    "network under eoc": (["solve", "tanh", "--method", "eoc", "--mlp", "10"], "--mlp"),
    "resnet under eoc": (["solve", "tanh", "--method", "eoc", "--resnet", "50"], "--resnet"),
    "digits under eoc": (["solve", "tanh", "--method", "eoc", "--digits", "30"], "--digits"),
    "zeta under eoc": (["solve", "tanh", "--method", "eoc", "--zeta", "2"], "--zeta"),
    "output without emit": (["solve", "tanh", "-o", "act.py"], "--emit"),
    "output under eoc": (["solve", "tanh", "--method", "eoc", "-o", "act.py"], "--emit"),
    "network on a cmap plot": (["plot", "cmap", "tanh", "--mlp", "10", "-o",
                                "/nonexistent-dir/c.png"], "--mlp"),
    "shortcut weight on a phase plot": (["plot", "phase", "tanh", "--shortcut-weight", "0.5",
                                         "-o", "/nonexistent-dir/p.png"], "--shortcut-weight"),
    "shortcut weight without resnet in a plot": (
        ["plot", "degeneration", "tanh", "--shortcut-weight", "0.5", "-o",
         "/nonexistent-dir/d.png"],
        "--resnet"),
}
USER_ERRORS.update(IGNORED_OPTIONS)


@pytest.mark.parametrize("argv, needle", USER_ERRORS.values(), ids=USER_ERRORS.keys())
def test_user_error_is_one_line_status_2(capsys, argv, needle):
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith(f"kernelshape {argv[0]}: error: ")
    assert needle in lines[0]


def test_misspelt_name_suggests_and_gives_no_python_hint(capsys):
    status, _, err = run(capsys, "maps", "sofplus")
    assert status == 2
    assert "did you mean softplus?" in err
    assert "parameters=" not in err and "--param NAME=VALUE" in err
    status, _, err = run(capsys, "maps", "x*tahn(x)")
    assert status == 2 and "'tahn'" in err and "parameters=" not in err


def test_misspelt_name_uses_the_parsers_suggestions_when_given(capsys, monkeypatch):
    def raise_with_suggestions(text, **values):
        err = ks.errors.UnknownNameError("unknown name 'zzz' in expression")
        err.suggestions = ["gelu", "selu"]
        raise err
    monkeypatch.setattr(ks, "activation", raise_with_suggestions)
    status, _, err = run(capsys, "maps", "zzz")
    assert status == 2 and "did you mean gelu or selu?" in err


def test_output_dir_that_is_a_file_is_a_user_error(capsys, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    for argv in (["demo", "-o", str(blocker / "out")],
                 ["figures", "--only", "c_maps", "-o", str(blocker)]):
        status, _out, err = run(capsys, *argv)
        assert status == 2, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert str(blocker) in err


def test_figures_default_output_is_not_the_tracked_directory(capsys, tmp_path, monkeypatch):
    from kernelshape import figures
    tracked = figures.FIGURES_DIR / "c_maps.png"
    before = tracked.stat().st_mtime_ns
    monkeypatch.chdir(tmp_path)
    status, _out, err = run(capsys, "figures", "--only", "c_maps")
    assert status == 0, err
    assert (tmp_path / figures.DEFAULT_OUTDIR / "c_maps.png").is_file()
    assert tracked.stat().st_mtime_ns == before


def test_plot_degeneration_relu_warns_about_nothing(capsys, tmp_path):
    """issue 13 point 4: a ReluWarning for a DKS-ReLU solve the user did not ask for."""
    import warnings
    path = tmp_path / "relu.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        status, out, err = run(capsys, "plot", "degeneration", "relu", "--mlp", "20",
                               "-o", str(path))
    assert status == 0 and not err, err
    assert path.read_bytes()[:4] == b"\x89PNG" and f"wrote {path}" in out


def test_demo_does_not_import_the_command_line():
    """issue 13 point 8: the flow is cli -> demo, never back."""
    import ast
    import inspect

    from kernelshape import demo
    tree = ast.parse(inspect.getsource(demo))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for a in node.names}
    assert not any(name and name.split(".")[-1] == "cli" for name in imported), imported


ARGPARSE_ERRORS = {
    "unknown method": (["solve", "tanh", "--method", "magic"], "magic"),
    "order out of range": (["maps", "tanh", "--order", "3"], "3"),
    "not a number": (["maps", "tanh", "--c", "zero"], "zero"),
    "unknown resnet depth": (["solve", "tanh", "--resnet", "7"], "7"),
    "mlp and resnet together": (["solve", "tanh", "--mlp", "5", "--resnet", "50"], "--mlp"),
    "unknown emit target": (["solve", "tanh", "--emit", "fortran"], "fortran"),
    "unknown subcommand": (["frobnicate"], "frobnicate"),
}


@pytest.mark.parametrize("argv, needle", ARGPARSE_ERRORS.values(), ids=ARGPARSE_ERRORS.keys())
def test_bad_option_exits_2_without_traceback(capsys, argv, needle):
    status, _, err = run(capsys, *argv)
    assert status == 2
    assert "Traceback" not in err
    assert "error:" in err.strip().splitlines()[-1] and needle in err.strip().splitlines()[-1]


def test_no_command_prints_help_and_exits_2(capsys):
    status, out, _ = run(capsys)
    assert status == 2
    assert "usage: kernelshape" in out


# -- --help ----------------------------------------------------------------------------------
def test_parser_has_the_documented_subcommands():
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    assert set(SUBCOMMANDS) <= set(sub.choices)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help_of_every_subcommand_shows_examples(capsys, command):
    status, out, _ = run(capsys, command, "--help")
    assert status == 0
    assert f"usage: kernelshape {command}" in out
    examples = out[out.index("examples:"):].splitlines()[1:]
    assert examples and all(line.strip().startswith(f"kernelshape {command}")
                            for line in examples if line.strip())


def test_help_examples_parse(capsys):
    """Every example shown in --help is a valid command line for the parser."""
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    import shlex
    for name, subparser in sub.choices.items():
        epilog = subparser.epilog or ""
        for line in epilog.splitlines()[1:]:
            argv = shlex.split(line.strip())[1:]
            args = parser.parse_args(argv)
            assert args.command == name, line


def test_python_m_kernelshape_help():
    proc = subprocess.run([sys.executable, "-m", "kernelshape", "--help"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: kernelshape")
    for command in SUBCOMMANDS:
        assert command in proc.stdout
    assert not proc.stderr


class _Terminal:
    """A stderr stand-in that claims to be a terminal (progress is only drawn on those)."""

    def __init__(self):
        self.parts = []

    def isatty(self):
        return True

    def write(self, text):
        self.parts.append(text)

    def flush(self):
        pass


def test_progress_bar_and_spinner_draw_only_on_terminals(monkeypatch):
    import time

    term = _Terminal()
    monkeypatch.setattr(cli.sys, "stderr", term)
    bar = cli._Progress(3, "maps")
    for _ in range(3):
        bar.step()
    bar.close()
    assert "3/3" in "".join(term.parts) and "#" * 30 in "".join(term.parts)
    term.parts.clear()
    with cli._Spinner("solving"):
        time.sleep(0.45)
    drawn = "".join(term.parts)
    assert "solving" in drawn and " s" in drawn and drawn.endswith("\r")
    monkeypatch.setattr(cli.sys, "stderr", __import__("io").StringIO())
    quiet = cli._Progress(3, "maps")
    quiet.step()
    assert not quiet.enabled
