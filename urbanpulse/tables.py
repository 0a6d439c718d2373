"""The command line's tables: boxes on a terminal, tab-separated lines into a pipe or a file.

A rich table fitted to a pipe's 80 columns cuts cells short (``air…``), so ``urbanpulse events list |
grep air-00001`` found nothing. Piped, a table is its header and rows, one line each, cells separated
by tabs and free of markup: for ``grep``, ``cut`` and spreadsheets.

>>> from io import StringIO
>>> from rich.table import Table
>>> table = Table("device", "online", title="2 devices")
>>> table.add_row("air-00001", "yes")
>>> table.add_row("traffic-00002", "[red]no[/red]")
>>> out = StringIO()
>>> show(table, Console(file=out))
>>> out.getvalue().splitlines()
['device\\tonline', 'air-00001\\tyes', 'traffic-00002\\tno']
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["show"]


def _plain(cell: object) -> str:
    if isinstance(cell, Text):
        return cell.plain
    return Text.from_markup(cell).plain if isinstance(cell, str) else str(cell)


def show(table: Table, console: Console | None = None) -> None:
    """Print ``table`` on ``console`` (stdout's by default): boxed on a terminal, tab-separated otherwise."""
    console = console or Console()
    if console.is_terminal:
        console.print(table)
        return
    columns = table.columns
    lines = ["\t".join(_plain(c.header) for c in columns)]
    lines += ["\t".join(cells) for cells in zip(*([_plain(x) for x in c.cells] for c in columns), strict=True)]
    console.file.write("".join(f"{line}\n" for line in lines))
