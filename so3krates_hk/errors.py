"""Errors that mean "the input is wrong", as opposed to a bug.

Every such error derives from :class:`UserError`. The command line prints it as one line,
``so3krates-hk: error: <message>``, and exits with status 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations


class UserError(ValueError):
    """Invalid input from the user: a file, an option, a configuration key, a structure. The message says which."""


class MissingExtraError(UserError):
    """An optional dependency is missing; the message names the extra that installs it."""

    def __init__(self, module: str, extra: str, what: str):
        super().__init__(f"{what} needs the '{module}' package: pip install 'so3krates-hk[{extra}]'")
        self.module, self.extra = module, extra


def require(module: str, extra: str, what: str) -> None:
    """Raise :class:`MissingExtraError` now (before any compilation) if ``module`` is not importable."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(module, extra, what)
