"""Listings of any length as plain text columns, streamed line by line.

A rich Table holds every row and measures every cell before it prints one (about 1 ms a row: 100 s
for a library of 100,000 tracks); here the column widths come from the first rows, and each line is
formatted and handed on at once (a few microseconds a row, memory flat). Cells are plain text: the
caller makes outside text printable first (tagger.records.printable).
"""
from __future__ import annotations

from itertools import chain, islice
from typing import Iterable, Iterator, Sequence

from rich.cells import cell_len, set_cell_size

SAMPLE_ROWS = 1000   # the columns are as wide as their widest cell in this many first rows
GAP = "  "
ELLIPSIS = "…"


def table_lines(headers: Sequence[str], rows: Iterable[Sequence[str]], *,
                max_widths: Sequence[int | None] | None = None, right: frozenset[int] = frozenset()) -> Iterator[str]:
    """The header line, then one line per row. Each column but the last is as wide as its widest cell
    (the header's included) among the first SAMPLE_ROWS rows, at most its `max_widths` entry (None:
    no limit); a longer cell is cut, ending in '…'. The last column is neither padded nor cut, so a
    long path stays whole. Columns whose index is in `right` are aligned right."""
    rows = iter(rows)
    first = list(islice(rows, SAMPLE_ROWS))
    limits = list(max_widths) if max_widths is not None else [None] * len(headers)
    widths = []
    for i, header in enumerate(headers[:-1]):
        wanted = max(chain((cell_len(header),), (cell_len(row[i]) for row in first)))
        widths.append(wanted if limits[i] is None else min(wanted, limits[i]))

    def line(cells: Sequence[str]) -> str:
        parts = [_fit(cell, width, i in right) for i, (cell, width) in enumerate(zip(cells, widths))]
        parts.append(cells[-1])
        return GAP.join(parts).rstrip()

    yield line(headers)
    for row in chain(first, rows):
        yield line(row)


def _fit(text: str, width: int, right: bool) -> str:
    size = cell_len(text)
    if size > width:
        return set_cell_size(text, width - 1) + ELLIPSIS if width > 1 else set_cell_size(text, width)
    pad = " " * (width - size)
    return pad + text if right else text + pad
