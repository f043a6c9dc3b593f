"""The errors a user can fix, shared by every layer.

Each subclasses :class:`UserError`: the CLI prints its message (which names the problem and the fix)
and exits with status 2. Anything else escaping a command is a bug in this package: the CLI reports
it as an internal error with its own exit status, and ``--debug`` shows the traceback.
Subclasses also derive from the built-in exception a Python caller would expect (``ValueError`` for
bad input, ``RuntimeError`` for a failed run), so library code can catch them the usual way.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the input, the config or the study directory that the user can fix."""


class InputError(UserError, ValueError):
    """Bad arguments or data handed to a function (shapes, values, names)."""


class ConfigError(InputError):
    """A config file that cannot be used; the message names the field and the fix."""


class PlanError(InputError):
    """A study plan that cannot give the results asked for (e.g. too few models); checked before training."""


class StudyMismatchError(UserError, ValueError):
    """Reopening a study with settings or data that would mix its results with foreign ones."""


class StudyBusyError(UserError, RuntimeError):
    """Another process holds the study directory's lock."""


class RunFailedError(UserError, RuntimeError):
    """A run failed on every allowed attempt; the study stops with the finished runs kept."""
