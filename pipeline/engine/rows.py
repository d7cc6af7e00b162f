"""The rows to do, as the first operator's input: plain Arrow columns, made into Items where they run.

The driver once built an `Item` per manifest row and pickled each into the batch column: a Python
object and a pickle per row in the driver, held all at once (a million rows: a million objects
before the first row ran). Now the driver takes the rows to do out of the manifest table as it is
(columns, paths already resolved against the manifest's folder, the row number and the row's
validation problem as two more columns) and cuts it into blocks; the first operator turns a block
into Items (`items_from_rows`). Every later operator gets pickled Items as before
(`pipeline.engine.item.items_to_batch`).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from pipeline.engine.item import Item
from pipeline.io.manifest import resolve_path

ROW_COLUMN = "__hsp_row"  # the row's position in the manifest (Item.row)
PROBLEM_COLUMN = "__hsp_problem"  # the row's validation problem: the Item starts failed at "validate"
INTERNAL_COLUMNS = (ROW_COLUMN, PROBLEM_COLUMN)


def row_blocks(
    table: pa.Table,
    todo: Sequence[int],
    row_problems: dict[int, str],
    *,
    path_columns: Sequence[str],
    base_dir: str | None,
    rows_per_block: int,
) -> list[pa.Table]:
    """The rows `todo` of the manifest `table` in blocks of `rows_per_block` rows (the last may be shorter).

    Values of `path_columns` are resolved against `base_dir` here, on the driver, as before: every
    worker then reads the same absolute path or URI whatever its working directory.
    """
    rows = table.take(pa.array(todo, type=pa.int64()))
    for name in path_columns:
        if name not in rows.column_names:
            continue
        values = rows.column(name).to_pylist()
        resolved = [resolve_path(v, base_dir) if v and base_dir is not None else v for v in values]
        kind = pa.large_string() if pa.types.is_large_string(rows.schema.field(name).type) else pa.string()
        rows = rows.set_column(rows.column_names.index(name), name, pa.array(resolved, type=kind))
    rows = rows.append_column(ROW_COLUMN, pa.array(todo, type=pa.int64()))
    rows = rows.append_column(PROBLEM_COLUMN, pa.array([row_problems.get(r) for r in todo], type=pa.string()))
    step = max(1, rows_per_block)
    return [rows.slice(start, step) for start in range(0, rows.num_rows, step)]


def items_from_rows(block: pa.Table) -> list[Item]:
    """A block of `row_blocks` as Items: `fields` holds every manifest column; a row with a problem starts failed."""
    names = [n for n in block.column_names if n not in INTERNAL_COLUMNS]
    columns = {name: block.column(name).to_pylist() for name in names}
    row_numbers = block.column(ROW_COLUMN).to_pylist()
    problems = block.column(PROBLEM_COLUMN).to_pylist()
    items = []
    for k, (row, problem) in enumerate(zip(row_numbers, problems, strict=True)):
        fields = {name: columns[name][k] for name in names}
        item = Item(id=fields["id"], row=row, fields=fields)
        if problem is not None:
            item.fail("validate", problem, error="InvalidRow")
        items.append(item)
    return items
