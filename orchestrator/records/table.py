"""Tables for the review commands: aligned plain text, or CSV.

Example::

    print(text_table(["metric", "original", "new"], [["fit/loss", "0.65", "0.65"]]))
    # metric    original  new
    # fit/loss  0.65      0.65
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence


def text_table(header: Sequence[str], rows: Sequence[Sequence[object]], indent: str = "") -> str:
    """``rows`` under ``header`` in columns as wide as their widest cell, two spaces apart."""
    cells = [[str(cell) for cell in header], *[[cell_text(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    return "\n".join(indent + line for line in lines)


def csv_text(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """``rows`` under ``header`` as CSV (numbers written in full)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if cell is None else cell for cell in row] for row in rows])
    return out.getvalue()


def cell_text(value: object) -> str:
    """A number to 6 significant digits (``-`` for a missing value), anything else as it is."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
