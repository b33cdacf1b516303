"""mkdocs hook: render the notebooks in docs/notebooks/ as pages, offline and deterministic.

Each ``docs/notebooks/NAME.ipynb`` becomes a generated page ``notebooks/NAME.md``: markdown
cells verbatim, code cells as fenced Python blocks, and a link to download the notebook
itself (which mkdocs copies as a static file). The notebooks are stored without outputs and
are not executed here; ``tests/test_notebooks.py`` executes every one of them.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath

from mkdocs.structure.files import File, Files

_PREFIX = "notebooks/"


def notebook_to_markdown(text: str, filename: str) -> str:
    """Markdown for one notebook given its JSON ``text``; ``filename`` is linked for download."""
    nb = json.loads(text)
    parts = []
    for i, cell in enumerate(nb.get("cells", [])):
        source = "".join(cell.get("source", ""))
        if not source.strip():
            continue
        if cell.get("cell_type") == "markdown":
            parts.append(source.strip())
            if i == 0:
                parts.append(
                    f'!!! note "Run it yourself"\n'
                    f"    This page shows the notebook's code without outputs. Download "
                    f"[{filename}]({filename}) and run it with Jupyter; the test suite "
                    f"executes it on every run, so it stays in step with the library.")
        elif cell.get("cell_type") == "code":
            parts.append(f"```python\n{source.rstrip()}\n```")
    return "\n\n".join(parts) + "\n"


def on_files(files: Files, config) -> Files:
    for nb in [f for f in files if f.src_uri.startswith(_PREFIX)
               and f.src_uri.endswith(".ipynb")]:
        path = PurePosixPath(nb.src_uri)
        with open(nb.abs_src_path, encoding="utf-8") as fh:
            content = notebook_to_markdown(fh.read(), path.name)
        files.append(File.generated(config, str(path.with_suffix(".md")), content=content))
    return files
