"""mkdocs hook: publish the repository's figures (``figures/*.png``) under ``figures/``.

The figures are built by the scripts next to them (``kernelshape figures --update-checkout``)
and committed; pages embed them as ``figures/NAME.png`` relative to the site root (from a
page in a subdirectory, ``../figures/NAME.png``). Missing files are broken links, which the
strict build turns into errors.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

FIGURES = Path(__file__).resolve().parents[2] / "figures"


def on_files(files: Files, config) -> Files:
    for png in sorted(FIGURES.glob("*.png")):
        files.append(File.generated(config, f"figures/{png.name}", abs_src_path=str(png)))
    return files
