"""mkdocs hook: render the notebooks in docs/notebooks/ as pages, executed, with their outputs.

Each ``docs/notebooks/NAME.ipynb`` becomes a generated page ``notebooks/NAME.md``: markdown
cells verbatim, code cells as fenced Python blocks followed by what they printed and drew
(text as ``text`` blocks, figures as PNG files next to the page), and a link to download
the notebook itself (which mkdocs copies as a static file).

The notebooks are stored without outputs (readable diffs, nothing stale in git) and are
executed here, at build time, with nbclient in a fresh kernel, so a reader sees the results
without running anything. A failing cell fails the build. Executed notebooks are cached
(``$KERNELSHAPE_DOCS_CACHE``, default ``~/.cache/kernelshape/docs-notebooks``) under a hash of
the notebook and of every source file of the package, so a rebuild after a change to
either re-executes and an unchanged rebuild takes no time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path, PurePosixPath

from mkdocs.structure.files import File, Files

_PREFIX = "notebooks/"
_ROOT = Path(__file__).resolve().parents[2]
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: Seconds a single cell may take at build time.
CELL_TIMEOUT = 600


def _cache_dir() -> Path:
    env = os.environ.get("KERNELSHAPE_DOCS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "kernelshape" / "docs-notebooks"


def _key(text: str) -> str:
    digest = hashlib.sha256(text.encode())
    for path in sorted((_ROOT / "kernelshape").rglob("*.py")):
        digest.update(str(path.relative_to(_ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:32]


def execute(text: str, name: str) -> dict:
    """The notebook ``text`` executed top to bottom (cached); raises on a failing cell."""
    cache = _cache_dir() / f"{Path(name).stem}-{_key(text)}.ipynb"
    if cache.is_file():
        try:
            return json.loads(cache.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass                                   # a broken cache entry is rebuilt
    import nbclient
    import nbformat

    nb = nbformat.reads(text, as_version=4)
    with tempfile.TemporaryDirectory() as work:
        env_path = os.environ.get("PYTHONPATH", "")
        # The kernel imports this checkout's package, as the build does.
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env_path) if p)
        try:
            nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                    resources={"metadata": {"path": work}}).execute()
        except nbclient.exceptions.CellExecutionError as err:
            raise RuntimeError(f"docs/notebooks/{name} failed at build time:\n{err}") from err
        finally:
            if env_path:
                os.environ["PYTHONPATH"] = env_path
            else:
                os.environ.pop("PYTHONPATH", None)
    data = json.loads(nbformat.writes(nb))
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(cache)
    except OSError:
        pass                                       # no cache: the next build runs it again
    return data


def notebook_to_markdown(nb: dict, filename: str) -> tuple[str, dict[str, bytes]]:
    """Markdown for one executed notebook, and the images it refers to (name -> PNG bytes).

    ``filename`` is linked for download; images are named ``<stem>/cell<i>-<k>.png``
    relative to the page.
    """
    stem = PurePosixPath(filename).stem
    parts, images = [], {}
    for i, cell in enumerate(nb.get("cells", [])):
        source = "".join(cell.get("source", ""))
        if not source.strip():
            continue
        if cell.get("cell_type") == "markdown":
            parts.append(source.strip())
            if i == 0:
                parts.append(
                    f'!!! note "Run it yourself"\n'
                    f"    The outputs below were computed when this site was built. Download "
                    f"[{filename}]({filename}) to run it with Jupyter; the test suite "
                    f"executes it on every run, so it stays in step with the library.")
        elif cell.get("cell_type") == "code":
            parts.append(f"```python\n{source.rstrip()}\n```")
            for k, out in enumerate(cell.get("outputs", [])):
                rendered = _output(out, f"{stem}/cell{i}-{k}.png", images)
                if rendered:
                    parts.append(rendered)
    return "\n\n".join(parts) + "\n", images


def _output(out: dict, image_name: str, images: dict) -> str:
    import base64

    kind = out.get("output_type")
    if kind == "stream":
        return _text_block("".join(out.get("text", "")))
    if kind in ("execute_result", "display_data"):
        data = out.get("data", {})
        if "image/png" in data:
            images[image_name] = base64.b64decode("".join(data["image/png"]))
            return f"![output]({image_name}){{ .nb-output }}"
        if "text/plain" in data:
            return _text_block("".join(data["text/plain"]))
    if kind == "error":
        raise RuntimeError(f"a notebook cell failed: {out.get('ename')}: {out.get('evalue')}")
    return ""


def _text_block(text: str) -> str:
    text = _ANSI.sub("", text).rstrip()
    # The class lets a stylesheet (and the tests) tell outputs from code.
    return f"```{{.text .nb-output}}\n{text}\n```" if text else ""


def on_files(files: Files, config) -> Files:
    for nb_file in [f for f in files if f.src_uri.startswith(_PREFIX)
                    and f.src_uri.endswith(".ipynb")]:
        path = PurePosixPath(nb_file.src_uri)
        with open(nb_file.abs_src_path, encoding="utf-8") as fh:
            executed = execute(fh.read(), path.name)
        content, images = notebook_to_markdown(executed, path.name)
        files.append(File.generated(config, str(path.with_suffix(".md")), content=content))
        for name, png in images.items():
            files.append(File.generated(config, str(path.parent / name), content=png))
    return files
