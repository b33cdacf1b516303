"""Shared style of kernelshape figures: palette, rc settings, pyplot-free Figure."""

from __future__ import annotations

import numpy as np

#: Okabe & Ito (2008) colour-blind-safe palette (black first).
OKABE_ITO = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00",
             "#CC79A7")
#: One colour per method, used by every figure.
METHOD_COLORS = {"untransformed": "#D55E00", "eoc": "#E69F00", "dks": "#0072B2",
                 "tat": "#009E73", "he": "#CC79A7", "other": "#56B4E9"}
#: Default depths of the degeneration figure.
DEPTHS = (1, 2, 5, 10, 20, 50, 100)
#: Method names understood by :func:`degeneration` and :func:`c_vs_depth`.
METHODS = ("untransformed", "eoc", "dks", "tat")
#: sigma_b^2 of the EOC initialization when none is given (THEORY.md §3's tanh example).
EOC_BIAS_VARIANCE = 0.05

_RC = {"font.size": 10, "axes.titlesize": 10.5, "axes.labelsize": 10, "legend.fontsize": 8,
       "xtick.labelsize": 8.5, "ytick.labelsize": 8.5, "axes.grid": True,
       "grid.alpha": 0.25, "grid.linewidth": 0.6, "lines.linewidth": 1.6,
       "axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False,
       "figure.dpi": 100, "savefig.dpi": 110, "mathtext.fontset": "dejavusans"}


def _figure(nrows=1, ncols=1, *, width=3.3, height=3.0, **kw):
    """A pyplot-free Figure with the package style and a grid of axes (always 2-D)."""
    import matplotlib as mpl
    from matplotlib.figure import Figure

    with mpl.rc_context(_RC):
        fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def _styled(fn):
    """Run a figure builder under the package rc settings (fonts, grid, line widths)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import matplotlib as mpl
        with mpl.rc_context(_RC):
            return fn(*args, **kwargs)
    return wrapper


def _depth_colors(n):
    import matplotlib as mpl
    cmap = mpl.colormaps["viridis"]
    return [cmap(v) for v in np.linspace(0.0, 0.9, n)]


def _name(act):
    return getattr(act, "name", None) or str(getattr(act, "expr", act))


