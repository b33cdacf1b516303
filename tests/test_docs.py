"""The documentation site: it builds strictly offline, documents the public API, and its
code examples run.

The site is built once per session with ``mkdocs build --strict`` into a temporary directory
(mkdocs-material + mkdocstrings[python]; see mkdocs.yml). ``--strict`` turns every warning
(a broken link, a docstring that names a parameter the function does not have, an object
mkdocstrings cannot find) into a failed build.
"""

from __future__ import annotations

import ast
import html
import importlib.util
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import kernelshape as ks

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
REFERENCE_PAGES = sorted((DOCS / "reference").glob("*.md"))
NOTEBOOKS = sorted((DOCS / "notebooks").glob("*.ipynb"))
# Pages whose ```python blocks form one runnable session each (run in order, fresh namespace).
RUNNABLE_PAGES = [page for page in ["quickstart.md", "index.md", *sorted(
    str(p.relative_to(DOCS)) for p in (DOCS / "guide").glob("*.md"))]
    if "```python" in (DOCS / page).read_text(encoding="utf-8")]

_ID = re.compile(r'id="([^"]+)"')
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def _public_names():
    # Dunders (``__version__``) are data, not API objects with docstrings.
    return [n for n in getattr(ks, "__all__", ()) if not (n.startswith("__") and n.endswith("__"))]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    # No network at build time: mkdocs-material with `font: false` and no CDN plugins; the
    # proxy variables point nowhere so an accidental fetch fails the build instead of passing.
    env = {**os.environ, "NO_PROXY": "", "HTTP_PROXY": "http://127.0.0.1:9",
           "HTTPS_PROXY": "http://127.0.0.1:9", "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--clean",
         "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
        # Notebooks are executed at build time (cached by content, docs/_hooks/notebooks.py):
        # the first build after a change runs them all.
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800, check=False)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stderr[-6000:]}"
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("WARNING")]
    assert not warnings, "\n".join(warnings)
    return out


def _reference_ids(site) -> set[str]:
    ids = set()
    for page in (site / "reference").rglob("*.html"):
        ids |= {html.unescape(i) for i in _ID.findall(page.read_text(encoding="utf-8"))}
    return ids


def test_site_builds_strict_with_every_page(site):
    expected = ["index.html", "quickstart/index.html", "theory/index.html",
                "coming-from-dks/index.html", "reference/index.html"]
    expected += [f"guide/{p.stem}/index.html" for p in (DOCS / "guide").glob("*.md")]
    expected += [f"reference/{p.stem}/index.html" for p in REFERENCE_PAGES if p.stem != "index"]
    missing = [p for p in expected if not (site / p).is_file()]
    assert not missing, f"pages missing from the built site: {missing}"


def test_public_names_exist():
    assert hasattr(ks, "__all__"), "kernelshape/__init__.py must define __all__"
    # The names API.md promises at the top level.
    promised = {"activation", "builtins", "Activation", "mlp", "resnet", "dks", "tat", "eoc",
                "Transform", "codegen", "KernelShapeError"}
    assert promised <= set(ks.__all__), f"missing from __all__: {promised - set(ks.__all__)}"
    missing = [n for n in ks.__all__ if not hasattr(ks, n)]
    assert not missing, f"kernelshape.__all__ names that kernelshape lacks: {missing}"


@pytest.mark.parametrize("name", _public_names())
def test_public_name_has_docstring(name):
    obj = getattr(ks, name)
    # A class's own docstring, not one inherited from a base class.
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    if not isinstance(obj, (type, types.FunctionType, types.ModuleType)) and not callable(obj):
        pytest.fail(f"kernelshape.{name} is a {type(obj).__name__}, not a function, class or "
                    "module; data does not belong in __all__ without a reference entry")
    assert doc and doc.strip(), f"kernelshape.{name} has no docstring"


def test_every_public_name_is_in_the_rendered_reference(site):
    ids = _reference_ids(site)
    undocumented = []
    for name in _public_names():
        obj = getattr(ks, name)
        if isinstance(obj, types.ModuleType):
            targets = {obj.__name__}
        else:
            # Rendered under the module that defines it, or re-exported from a package.
            targets = {f"{obj.__module__}.{obj.__qualname__}", f"kernelshape.{name}"}
        if not (targets & ids or any(i.endswith(f".{name}") and i.startswith("kernelshape")
                                     for i in ids)):
            undocumented.append(name)
    assert not undocumented, (
        f"public names without an entry on the API reference pages: {undocumented}; add their "
        "module to a page under docs/reference/ (or give them a docstring if they have none)")


def test_notebooks_are_rendered(site):
    assert len(NOTEBOOKS) >= 3
    for nb in NOTEBOOKS:
        page = site / "notebooks" / nb.stem / "index.html"
        assert page.is_file(), f"{nb.name} has no rendered page"
        text = re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8"))  # highlighting spans
        assert "import kernelshape" in text, f"{nb.name}: code cells missing from the page"
        assert (site / "notebooks" / nb.name).is_file(), f"{nb.name} is not downloadable"


_IMG = re.compile(r'<img[^>]+src="([^"]+)"')
# figures/*.png embedded in the docs (the training figure belongs to the training example).
EMBEDDED_FIGURES = sorted(p.name for p in (ROOT / "figures").glob("*.png")
                          if not p.name.startswith("training"))


def _images(site, page):
    """The image files a built page shows, resolved against the site (they must exist)."""
    path = site / page
    found = []
    for src in _IMG.findall(path.read_text(encoding="utf-8")):
        if src.startswith(("http:", "https:", "data:")):
            continue
        target = (path.parent / html.unescape(src)).resolve()
        assert target.is_file(), f"{page} shows a missing image {src}"
        found.append(target)
    return found


def test_site_shows_the_figures(site):
    """issue 13 point 6: the docs showed no image at all."""
    shown = set()
    for page in ("index.html", "theory/index.html", "guide/plots/index.html"):
        images = _images(site, page)
        assert images, f"{page} shows no figure"
        shown |= {p.name for p in images}
    missing = [name for name in EMBEDDED_FIGURES if name not in shown]
    assert not missing, f"figures not shown in the docs: {missing}"
    for name in EMBEDDED_FIGURES:
        assert (site / "figures" / name).read_bytes() == (ROOT / "figures" / name).read_bytes()


def test_notebook_pages_show_executed_outputs(site):
    """issue 13 point 6: notebooks were shown without outputs; the last cell of the
    degeneration notebook showed nothing even when run."""
    page = site / "notebooks" / "degeneration" / "index.html"
    text = page.read_text(encoding="utf-8")
    assert "L =   1:  C_f(0) = 0.3183" in html.unescape(re.sub(r"<[^>]+>", "", text))
    images = _images(site, "notebooks/degeneration/index.html")
    assert len(images) >= 2 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in images)
    # an image follows the last code cell, `fig = plot.degeneration(...)`
    last_call = text.rindex('<span class="n">degeneration</span>')
    assert re.search(r'<img[^>]+class="nb-output"', text[last_call:])
    for nb in NOTEBOOKS:
        nb_page = (site / "notebooks" / nb.stem / "index.html").read_text(encoding="utf-8")
        assert 'nb-output' in nb_page, f"{nb.name}: no output on its page"


def test_pln_mapping_in_coming_from_dks_is_right():
    """issue 13 point 6: dks 0.1.2 has per_location_normalization; the page maps its modes
    onto kernelshape's pln, and the mapping gives dks's numbers."""
    import numpy as np
    import torch
    from dks.pytorch.data_preprocessing import per_location_normalization

    from kernelshape.pln import pln
    page = (DOCS / "coming-from-dks.md").read_text(encoding="utf-8")
    assert "per_location_normalization" in page and "not included in `dks`" not in page
    x = np.random.default_rng(0).normal(size=(3, 4, 5, 30))
    for dks_mode, ks_mode in (("one", "one"), ("avg_q", "rms"), ("off", None)):
        assert f'`homog_mode="{dks_mode}"' in page
        assert (f'`homogeneous="{ks_mode}"' if ks_mode else "`homogeneous=None`") in page
        ours = pln(x, homogeneous=ks_mode, homogeneous_scale=0.7)
        theirs = per_location_normalization(torch.tensor(x), homog_mode=dks_mode,
                                            homog_scale=0.7).numpy()
        # dks builds the "one" coordinate in float32 (torch.ones): 1e-7 relative
        np.testing.assert_allclose(ours, theirs, rtol=1e-7, atol=1e-7)


def test_no_external_assets_at_read_time(site):
    # The site must read offline: no web fonts, scripts or stylesheets from other hosts.
    offenders = []
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        for m in re.finditer(r'<(?:script|link)[^>]+(?:src|href)="(https?://[^"]+)"', text):
            offenders.append((str(page.relative_to(site)), m.group(1)))
    assert not offenders, f"pages load assets from the network: {offenders[:5]}"


@pytest.mark.parametrize("page", RUNNABLE_PAGES)
def test_page_examples_run(page, tmp_path, monkeypatch):
    """Every ```python block of a page runs, in order, in one namespace (a reader's session)."""
    blocks = _PYTHON_BLOCK.findall((DOCS / page).read_text(encoding="utf-8"))
    monkeypatch.chdir(tmp_path)  # examples may write files (generated code, figures)
    import matplotlib
    matplotlib.use("Agg")
    namespace: dict = {"__name__": f"docs_{Path(page).stem}"}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"docs/{page}[block {i}]", "exec"), namespace)  # noqa: S102
        except Exception as err:  # re-raised with the page and block named
            raise AssertionError(f"docs/{page}, python block {i} failed:\n{block}") from err
    import matplotlib.pyplot as plt
    plt.close("all")


def _dks_top_level_names(module: str) -> set[str] | None:
    """Names defined at the top level of a module of the installed dks package, read from
    its source (importing dks.jax / dks.tensorflow / the haiku example needs frameworks
    and versions this environment does not have), or None if there is no such module."""
    spec = importlib.util.find_spec("dks")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*module.split(".")[1:])
    source = path.with_suffix(".py")
    if not source.is_file():
        return None
    tree = ast.parse(source.read_text(encoding="utf-8"))
    return {node.name for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef))}


def test_dks_names_on_mapping_page_exist():
    """The 'coming from dks' page names only dks functions that exist (dks 0.1.2)."""
    if importlib.util.find_spec("dks") is None:
        pytest.fail("the dks package (a test dependency, dks==0.1.2) is not installed")
    text = (DOCS / "coming-from-dks.md").read_text(encoding="utf-8")
    dotted = set(re.findall(r"`(dks\.[a-z_.]+[A-Za-z_]+)\(", text))
    assert len(dotted) >= 8
    missing = []
    for path in sorted(dotted):
        module, _, attr = path.rpartition(".")
        names = _dks_top_level_names(module)
        if names is None or attr not in names:
            missing.append(path)
    assert not missing, f"dks names on the mapping page that dks 0.1.2 lacks: {missing}"


def test_theory_cites_the_papers():
    text = (DOCS / "theory.md").read_text(encoding="utf-8")
    for needle in ("2110.01765", "2203.08120", "Poole et al.", "Schoenholz et al."):
        assert needle in text
    for formula in ("Q(1) = 1", "C(0) = 0", "C'(1) = xi", "C''(1) = tau_local",
                    "M_{f, C_a}(0) = eta", "chi_1 = sigma_w²"):
        assert formula in text, f"theory page lacks the condition {formula!r}"

