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
