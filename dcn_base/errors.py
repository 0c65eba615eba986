"""User-facing errors: one line, naming the thing, what was got and what was expected.

Command-line tools print ``<tool>: error: <message>`` for these and exit with code 2
(usage / input / environment); anything else is a bug and keeps its traceback.
"""
from __future__ import annotations


class DcnError(Exception):
    """An error the user can fix; its message is one line."""

    exit_code = 2


class ContractError(DcnError, ValueError):
    """An op's inputs or attributes violate the contract (shared/design/ops.md)."""


def one_line(text) -> str:
    """Collapse a message onto one line (errors print as ``<tool>: error: <one line>``)."""
    return " ".join(str(text).split())


def first_line(err: BaseException) -> str:
    """The first non-blank line of an exception's message, on one line (its type name if none)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return one_line(lines[0]) if lines else type(err).__name__


def describe(err: BaseException, limit: int = 400) -> str:
    """``Type: first line`` of a library's exception (ANSI colours dropped, at most ``limit`` characters)."""
    import re

    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    line = re.sub(r"\x1b\[[0-9;]*m", "", lines[0]) if lines else ""
    line = line if len(line) <= limit else line[:limit - 3] + "..."
    return f"{type(err).__name__}: {line}" if line else type(err).__name__
