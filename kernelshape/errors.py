"""Errors kernelshape raises on purpose.

Every error derives from :class:`KernelShapeError` and also from the matching built-in
exception, so ``except ValueError`` keeps working for callers who do not know this package.
Messages say what was expected and what was got.
"""

from __future__ import annotations

__all__ = [
    "ActivationError",
    "CodegenError",
    "ConvergenceError",
    "DocumentError",
    "DomainError",
    "ExpressionError",
    "FreeParameterError",
    "ImmutableError",
    "InfiniteMomentError",
    "KernelShapeError",
    "MagnitudeError",
    "ModelError",
    "NetworkError",
    "NotRealError",
    "PrecisionError",
    "TransformError",
    "UnknownNameError",
    "UnreachableTargetError",
    "UnsafeExpressionError",
    "UnsupportedError",
]


class KernelShapeError(Exception):
    """Base class of every error raised on purpose by kernelshape."""


class ExpressionError(KernelShapeError, ValueError):
    """Expression text or a sympy expression that cannot be an activation."""


class UnsafeExpressionError(ExpressionError):
    """Expression text using syntax outside the whitelist (attributes, lambdas, ...)."""


class UnknownNameError(ExpressionError, NameError):
    """A function or symbol name that the expression vocabulary does not know.

    Attributes:
        name: the unknown name.
        suggestions: known names close to it (``difflib``), best first; may be empty.
        summary: the message without hints that only make sense in Python (such as
            ``parameters=...``), for front ends like the command line.
    """

    def __init__(self, message: str, *, name: str | None = None, suggestions=(),
                 python_hint: str = ""):
        self.name = name
        self.suggestions = tuple(suggestions)
        self.summary = message
        super().__init__(f"{message}{python_hint}")


class MagnitudeError(ExpressionError, OverflowError):
    """A number in or from an expression beyond what can be computed with.

    Constants beyond float64's range (``exp(exp(10))``, ``x*1e308*10``), coefficients of
    derivatives that overflow float64 (``tanh(10**300*x)``), or activation values too large
    to evaluate even in mpmath (``exp(exp(exp(x)))`` at x = 33).
    """


class ActivationError(KernelShapeError, ValueError):
    """An activation that cannot be used as asked (bad parameter, unknown built-in, ...)."""


class FreeParameterError(ActivationError):
    """A map or evaluation was asked for while activation parameters are still free."""


class NotRealError(ActivationError):
    """The activation is not real-valued on the whole real line (log(x), sqrt(x), ...)."""


class InfiniteMomentError(ActivationError):
    """The Gaussian second moment E[phi(sqrt(q) z)^2] does not exist (exp(x**2), ...)."""


class DomainError(KernelShapeError, ValueError):
    """An argument outside its domain: c outside [-1, 1], q <= 0, NaN input, bad order."""


class PrecisionError(KernelShapeError, ValueError):
    """A precision request that cannot be honoured (digits < 1, ...)."""


class NetworkError(KernelShapeError, ValueError):
    """A network description that is malformed (weights, depths, shapes)."""


class TransformError(KernelShapeError, ValueError):
    """A transform that cannot be computed as asked (bad target, unsupported activation)."""


class DocumentError(TransformError):
    """A Transform document (``Transform.from_dict``, JSON) that breaks the schema or whose
    stored claims the re-evaluation does not confirm; ``key`` names the offending entry
    (``"params.input_scale"``, ``"residuals[2].achieved"``, ...)."""

    def __init__(self, key: str, message: str):
        super().__init__(f"Transform document, {key}: {message}")
        self.key, self.detail = key, message

    def __reduce__(self):   # picklable (multiprocessing) despite the two arguments
        return type(self), (self.key, self.detail)


class UnreachableTargetError(TransformError):
    """A transform target no parameter value can reach; says which and the closest value."""


class ConvergenceError(KernelShapeError, ArithmeticError):
    """An iterative computation (quadrature, root finding) did not converge."""


class UnsupportedError(KernelShapeError, NotImplementedError):
    """A combination the theory or this package does not cover."""


class CodegenError(KernelShapeError, ValueError):
    """Code generation that cannot produce correct code (unknown target, unmapped function)."""


class ModelError(KernelShapeError, ValueError):
    """A PyTorch or JAX model that cannot be read or shaped as the theory requires.

    The message lists every offending part by its module path (or equation), with the
    reason, so one error names all of them.
    """

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None):
        super().__init__(message)
        #: ``(path, reason)`` pairs, one per part of the model that does not fit.
        self.problems = list(problems or [])


class ImmutableError(KernelShapeError, AttributeError):
    """An attempt to change an object that is shared and therefore read-only."""
