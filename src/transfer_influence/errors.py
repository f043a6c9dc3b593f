"""The errors a user can fix, shared by every layer.

Each subclasses :class:`UserError`: the CLI prints its message (which names the problem and the fix)
and exits with status 2. Anything else escaping a command is a bug in this package: the CLI reports
it as an internal error with its own exit status, and ``--debug`` shows the traceback.
Subclasses also derive from the built-in exception a Python caller would expect (``ValueError`` for
bad input, ``RuntimeError`` for a failed run), so library code can catch them the usual way.
"""

from __future__ import annotations

import difflib
from typing import Sequence


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


NAMES_SHOWN = 10
"""Known names an unknown-name error lists: enough to show the spelling, short enough to read."""


def close_matches(name: str, known: Sequence[str], limit: int = 3) -> list[str]:
    """The known names ``name`` was probably meant to be: the same name in another case (``Bag`` for
    ``bag``) when there is one, since that is almost surely it; else close spellings by
    :mod:`difflib`, compared case-insensitively so that case never hides a typo."""
    by_fold: dict[str, list[str]] = {}
    for candidate in known:
        by_fold.setdefault(str(candidate).casefold(), []).append(str(candidate))
    folded = name.casefold()
    same = [k for k in by_fold.get(folded, []) if k != name]
    if same:
        return same[:limit]
    similar = difflib.get_close_matches(folded, list(by_fold), n=limit, cutoff=0.6)
    return list(dict.fromkeys(k for f in similar for k in by_fold[f]))[:limit]


def unknown_name_error(what: str, name: str, known: Sequence[str], plural: str | None = None, see: str | None = None) -> InputError:
    """One message for every "no such name" mistake: the name, what it was probably meant to be, and
    where the valid names are, e.g. ``unknown source class 'bag'; did you mean 'Bag'? (72 source
    classes: '0', '1', …; see `transfer-influence influence STUDY`)``. ``see``: where to find them all
    when the list is cut; returned, not raised, so the caller's ``raise`` shows in its traceback."""
    names = [str(k) for k in known]
    guesses = close_matches(name, names)
    guess = f"; did you mean {' or '.join(map(repr, guesses))}?" if guesses else ""
    shown = ", ".join(map(repr, names[:NAMES_SHOWN]))
    cut = len(names) > NAMES_SHOWN
    listing = f"{len(names)} {plural or what + 's'}: {shown}" + (", …" if cut else "")
    where = f"; see {see}" if see and cut else ""
    return InputError(f"unknown {what} {name!r}{guess} ({listing}{where})")
