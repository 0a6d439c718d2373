"""Where the commands write: ``console`` (stdout: results), ``err`` (stderr: errors and warnings, one line each),
and :func:`fail`, which ends a command on an operator's mistake or an outage. One place, so every subcommand's
errors read alike (``error: ...`` on stderr, exit status 2 for bad input, 1 for an outage)."""

from __future__ import annotations

from typing import NoReturn

from rich.console import Console
from rich.markup import escape

__all__ = ["console", "err", "fail"]

console = Console()
err = Console(stderr=True, soft_wrap=True)


def fail(message: str, status: int) -> NoReturn:
    """Stop the command: ``message`` as one line on stderr, and exit ``status`` (2 bad input, 1 outage)."""
    err.print(f"[red]error:[/] {escape(message)}", highlight=False)
    raise SystemExit(status)
