"""INSERTs compiled once per table and set of columns, and sent straight to the driver.

Through SQLAlchemy's execution layer, an INSERT of an event costs 43 µs where the
statement itself costs 7: the cache lookup, the execution context, the parameters and
the result are built afresh every time. The intake writes half a dozen rows for every
message it stores, so it prepares each statement here once (its text, its parameters in
order, the type processors and the column defaults SQLAlchemy would apply) and hands it
to the driver's cursor.

What SQLAlchemy's layer would still do for such a statement is done here too: a driver
error comes out as SQLAlchemy's exception for it (an IntegrityError is an IntegrityError),
and a lost connection is invalidated, so that the pool never hands it out again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

_Processor = Callable[[Any], Any]


@dataclass(frozen=True)
class _Insert:
    sql: str
    names: tuple[str, ...]  # the parameters, in the order of a positional statement
    positional: bool
    processors: tuple[tuple[str, _Processor], ...]
    defaults: tuple[tuple[str, Any, bool], ...]  # column, default, whether to call it
    # The new row's key: a RETURNING clause, or else the cursor's lastrowid.
    returning: bool


# By the kind of dialect rather than the instance: every engine of one URL scheme
# compiles alike, and tests make an engine each.
_PREPARED: dict[tuple[str, str, str, Table, frozenset[str]], _Insert] = {}


def _prepare(dialect: Dialect, table: Table, columns: frozenset[str]) -> _Insert:
    if len(table.primary_key.columns) != 1:
        raise ValueError(f"{table.name}: a key of one column is what lastrowid returns")
    returning = dialect.name != "sqlite"
    statement = table.insert()
    if returning:
        statement = statement.returning(*table.primary_key.columns)
    compiled = statement.compile(dialect=dialect, column_keys=sorted(columns))
    names = tuple(compiled.positiontup or ()) if compiled.positional else tuple(compiled.binds)
    processors = []
    for name in names:
        processor = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            processors.append((name, processor))
    defaults = []
    for column in compiled.insert_prefetch:
        default = column.default
        if default is None or not (default.is_scalar or default.is_callable):
            raise ValueError(f"{table.name}.{column.key}: a default this cannot apply")
        # A callable default is wrapped by SQLAlchemy to take the execution context,
        # which none of maild's defaults (list, a constant) reads.
        defaults.append((column.key, getattr(default, "arg", None), default.is_callable))
    return _Insert(compiled.string, names, compiled.positional, tuple(processors),
                   tuple(defaults), returning)


def insert_row(connection: Connection, table: Table, row: Mapping[str, Any]) -> Any:
    """INSERT `row` (column key -> value; columns left out get their defaults) and
    return the new row's primary key (its single column)."""
    dialect = connection.dialect
    columns = frozenset(row)
    key = (dialect.name, dialect.driver, dialect.paramstyle, table, columns)
    insert = _PREPARED.get(key)
    if insert is None:
        insert = _PREPARED[key] = _prepare(dialect, table, columns)
    values = dict(row)
    for column, default, call in insert.defaults:
        values[column] = default(None) if call else default
    for name, processor in insert.processors:
        values[name] = processor(values[name])
    parameters: Any = tuple(values[name] for name in insert.names) if insert.positional \
        else values
    driver_connection = connection.connection
    cursor = driver_connection.cursor()
    try:
        cursor.execute(insert.sql, parameters)
        if insert.returning:
            fetched = cursor.fetchone()
            return fetched[0] if fetched else None
        return cursor.lastrowid
    except dialect.loaded_dbapi.Error as exc:
        lost = dialect.is_disconnect(exc, driver_connection, cursor)
        if lost:
            connection.invalidate(exc)
        raise DBAPIError.instance(insert.sql, parameters, exc, dialect.loaded_dbapi.Error,
                                  connection_invalidated=lost, dialect=dialect) from exc
    finally:
        cursor.close()
