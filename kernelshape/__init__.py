"""kernelshape: kernel theory of deep networks at initialization."""
from importlib.metadata import PackageNotFoundError, version as _version

from .activations import Activation, activation, builtins
from .errors import *  # noqa: F401,F403
from .errors import __all__ as _errors_all

try:
    __version__ = _version("kernelshape")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
