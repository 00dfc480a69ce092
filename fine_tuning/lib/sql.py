"""Named SQL statements, read from the `sql/` folder beside the assets that run them.

A file holds the statements of one asset (or check), each introduced by a `-- name: <name>`
line; the comment lines before the first name describe the file. Values always reach the SQL
as DuckDB parameters (`$name`), never by editing the text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from types import MappingProxyType

_NAME_LINE = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


@cache
def sql_statements(package: str, file: str) -> Mapping[str, str]:
    """The named statements of `<package>/sql/<file>.sql`, by name (read once per process).

    Raises ValueError for a file without statements, an empty statement or a repeated name:
    a broken file fails when its module is imported (`dg check defs`), not in the middle of a run.
    """
    path = resources.files(package).joinpath("sql", f"{file}.sql")
    pieces = _NAME_LINE.split(path.read_text(encoding="utf-8"))
    names, bodies = pieces[1::2], [body.strip() for body in pieces[2::2]]
    repeated = sorted({name for name in names if names.count(name) > 1})
    empty = [name for name, body in zip(names, bodies) if not body]
    if not names or repeated or empty:
        raise ValueError(f"{path}: needs '-- name: <name>' statements, unique and non-empty "
                         f"(repeated: {repeated}, empty: {empty})")
    return MappingProxyType(dict(zip(names, bodies)))
