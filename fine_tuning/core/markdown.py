"""Markdown tables, the one way the pipeline renders tabular facts into metadata and reports."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

_RULES = {"l": "---", "r": "---:"}


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]], align: str | None = None) -> str:
    """A GitHub-flavoured markdown table: `header`, one line per row, cells shown with str().

    `align` holds one letter per column, "l" (left) or "r" (right: numbers); default all left.
    """
    align = align or "l" * len(header)
    if len(align) != len(header) or set(align) - set(_RULES):
        raise ValueError(f"align needs one of 'l'/'r' per column of {list(header)}, got {align!r}")
    lines = [_row(header), "|" + "|".join(_RULES[letter] for letter in align) + "|"]
    lines += [_row(row) for row in rows]
    return "\n".join(lines)


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"
