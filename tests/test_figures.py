"""figures/: one script per figure, its committed PNG, and build_all regenerating them."""


import matplotlib
import pytest

matplotlib.use("Agg")

from kernelshape import figures
from kernelshape.errors import DomainError, UnsupportedError

EXPECTED = {"degeneration_tanh", "degeneration_relu", "c_vs_depth_relu", "c_vs_depth_tanh",
            "eoc_phase_tanh", "c_maps", "q_map_tanh", "transformed_activations",
            "predicted_vs_empirical", "training_depth", "dks_bounds",
            "training_digits_cnn"}


def test_every_figure_has_a_script_and_a_small_committed_png():
    names = set(figures.available())
    assert names == EXPECTED
    for name in names:
        png = figures.FIGURES_DIR / f"{name}.png"
        assert png.is_file(), f"{png} missing: run `kernelshape figures --only {name}`"
        assert 20_000 < png.stat().st_size < 250_000, (png, png.stat().st_size)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_scripts_define_a_figure_and_use_only_the_public_api(name):
    module = figures._load(figures.FIGURES_DIR / f"{name}.py")
    assert callable(getattr(module, "figure", None)) or callable(getattr(module, "save", None))
    text = (figures.FIGURES_DIR / f"{name}.py").read_text()
    assert "._" not in text.replace("__file__", "").replace("__name__", ""), \
        "figure scripts use only public names"


def test_build_all_runs_scripts_and_writes_pngs(tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "tiny.py").write_text(
        "from pathlib import Path\n"
        "from kernelshape import plot\n"
        "def save(outdir):\n"
        "    fig = plot.training_curves({'a': {'step': [0, 1], 'train_loss': [1.0, 0.5],\n"
        "                                      'test_accuracy': [0.2, 0.4]}})\n"
        "    path = Path(outdir) / 'tiny.png'\n"
        "    fig.savefig(path)\n"
        "    return path\n")
    (scripts / "_helper.py").write_text("raise RuntimeError('not a figure')\n")
    assert figures.available(directory=scripts) == ("tiny",)
    paths = figures.build_all(directory=scripts, outdir=tmp_path / "out")
    assert paths == [tmp_path / "out" / "tiny.png"] and paths[0].stat().st_size > 1000
    with pytest.raises(DomainError, match="unknown figures \\['nope'\\]; available: tiny"):
        figures.build_all(only=["nope"], directory=scripts)
    with pytest.raises(UnsupportedError, match="source checkout"):
        figures.available(directory=tmp_path / "missing")


def test_a_real_figure_builds(tmp_path):
    (path,) = figures.build_all(only=["c_maps"], outdir=tmp_path)
    assert path == tmp_path / "c_maps.png" and path.stat().st_size > 20_000


def test_module_command_lists_figures(capsys):
    assert figures.main(["--list"]) == 0
    assert set(capsys.readouterr().out.split()) == EXPECTED
