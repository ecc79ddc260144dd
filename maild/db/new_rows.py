"""Writing the rows a step only added, with Core INSERTs instead of the unit of work.

A new ticket is six rows (the ticket, its requester, its first event, the customer's
message, the acknowledgment kept in the thread and its outbox entry). The unit of work
spends many times longer sorting, syncing and bookkeeping them than the INSERTs take,
and the intake writes one such set for every new conversation. When a step changed
nothing already stored and only added objects, `write_new_rows` inserts them itself, in
the order of the tables' foreign keys, taking each key from the related object as the
unit of work would, and lets the session forget them: nothing later in the batch holds
them, and whatever needs them again loads them from the database.

Anything else (a loaded row changed or deleted) is left to the session's flush.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Insert, Table, inspect
from sqlalchemy.orm import InstanceState, Mapper, RelationshipDirection, Session
from sqlalchemy.orm.attributes import set_committed_value

from maild.db.models import Base

_TABLE_ORDER = {table: index for index, table in enumerate(Base.metadata.sorted_tables)}
_INSERTS: dict[Table, Insert] = {table: table.insert() for table in _TABLE_ORDER}


def write_new_rows(session: Session) -> bool:
    """Insert the objects pending in `session` and detach them; False, having written
    nothing, when the session also holds changes to stored rows (for its own flush)."""
    if not session.new or session.dirty or session.deleted:
        return False
    states: list[InstanceState[Any]] = [inspect(obj) for obj in session.new]
    # Parents before children, and within a table in the order they were added, as the
    # unit of work does: a thread's messages are read back in the order of their ids.
    states.sort(key=lambda state: (_TABLE_ORDER[_table(state.mapper)],
                                   state.insert_order))
    keys: dict[InstanceState[Any], dict[str, Any]] = {state: {} for state in states}
    connection = session.connection()
    for state in states:
        mapper = state.mapper
        row = _row(state, mapper, keys[state])
        result = connection.execute(_INSERTS[_table(mapper)], row)
        for column, value in zip(mapper.primary_key, result.inserted_primary_key or (),
                                 strict=True):
            set_committed_value(state.obj(), mapper.get_property_by_column(column).key, value)
        _hand_key_to_children(state, mapper, keys)
    for state in states:
        if state.obj() in session:
            session.expunge(state.obj())
    return True


def _table(mapper: Mapper[Any]) -> Table:
    return cast(Table, mapper.local_table)


def _row(state: InstanceState[Any], mapper: Mapper[Any], keys: dict[str, Any]
         ) -> dict[str, Any]:
    """The columns as the unit of work would send them: unset ones and None left to the
    column's default, except where the type stores None as a value (JSON)."""
    values = state.dict
    row: dict[str, Any] = {}
    for prop in mapper.column_attrs:
        column = prop.columns[0]
        value = values.get(prop.key)
        if value is None and not column.type.should_evaluate_none:
            continue
        if prop.key in values:
            row[column.key] = value
    for relationship in mapper.relationships:
        if relationship.direction is not RelationshipDirection.MANYTOONE:
            continue
        parent = values.get(relationship.key)
        if parent is None:
            continue
        parent_mapper = inspect(parent).mapper
        for local, remote in relationship.local_remote_pairs or ():
            # getattr: a stored parent's key may be expired (after a savepoint rolled back)
            row[str(local.key)] = getattr(parent, parent_mapper.get_property_by_column(remote).key)
    row.update(keys)
    return row


def _hand_key_to_children(state: InstanceState[Any], mapper: Mapper[Any],
                          keys: dict[InstanceState[Any], dict[str, Any]]) -> None:
    """A one-to-many collection whose children do not point back: their foreign key."""
    for relationship in mapper.relationships:
        if relationship.direction is not RelationshipDirection.ONETOMANY:
            continue
        children = state.dict.get(relationship.key)
        if children is None:
            continue
        for child in children if relationship.uselist else [children]:
            child_state = inspect(child)
            if child_state not in keys:
                continue
            for local, remote in relationship.local_remote_pairs or ():
                key = mapper.get_property_by_column(local).key
                keys[child_state][str(remote.key)] = state.dict[key]
