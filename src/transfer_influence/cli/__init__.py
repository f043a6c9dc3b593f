"""Command line: ``transfer-influence run|work|status|influence|diagnose|report|plan|demo|counterfactual|
compare-rankings|handpicked|whatif|project|explain|verify|leaks``.

One module per command family: ``study_commands`` (create and run studies), ``reading`` (read a finished
study), ``acting`` (retrain or predict from its influences); the parser (``parser``) and its argument types
(``arguments``) apart, and what handlers share (``common``: config overrides, the study context from the
flags). ``main`` parses, runs one handler, and turns its errors into exit statuses."""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import Sequence

from ..errors import InputError, UserError
from .acting import cmd_compare_rankings, cmd_counterfactual, cmd_handpicked, cmd_verify, cmd_whatif
from .arguments import notes_on_one_line
from .parser import build_parser
from .reading import cmd_diagnose, cmd_explain, cmd_influence, cmd_leaks, cmd_project, cmd_report
from .study_commands import cmd_demo, cmd_plan, cmd_run, cmd_status, cmd_work

EXIT_USAGE = 2
"""A problem the user can fix: bad config, bad input, a study that does not match."""
EXIT_INTERNAL = 1
"""A bug in transfer-influence: the message says so, ``--debug`` shows the traceback."""
EXIT_INTERRUPTED = 130


COMMANDS = {
    "run": cmd_run,
    "work": cmd_work,
    "status": cmd_status,
    "influence": cmd_influence,
    "diagnose": cmd_diagnose,
    "plan": cmd_plan,
    "report": cmd_report,
    "project": cmd_project,
    "explain": cmd_explain,
    "demo": cmd_demo,
    "counterfactual": cmd_counterfactual,
    "compare-rankings": cmd_compare_rankings,
    "whatif": cmd_whatif,
    "handpicked": cmd_handpicked,
    "verify": cmd_verify,
    "leaks": cmd_leaks,
}


def main(argv: Sequence[str] | None = None) -> int:
    with notes_on_one_line():
        try:
            args = build_parser().parse_args(argv)
        except InputError as exc:  # a bad flag or value, refused before any work
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        return _run_command(args)


def _run_command(args: argparse.Namespace) -> int:
    """Run the parsed command; the exit status tells a user error (2) from a bug (1)."""
    try:
        return COMMANDS[args.command](args)
    except (UserError, FileNotFoundError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: finished runs are kept; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - anything else is a bug: say so, keep the traceback reachable
        if args.debug:
            traceback.print_exc()
        print(
            f"internal error: {exc.__class__.__name__}: {exc}\n"
            "this is a bug in transfer-influence; run again with --debug for the traceback and report it",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
