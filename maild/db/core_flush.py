"""A step's changes written with Core statements instead of the unit of work.

A new ticket is six rows (the ticket, its requester, its first event, the customer's
message, the acknowledgment kept in the thread and its outbox entry); a customer's
reply is a new message and event and a changed ticket. The unit of work spends several
times longer sorting, syncing and bookkeeping them than the statements take, and the
intake writes such a set for every message of a backlog.

`flush_with_core` writes what the session holds the way the unit of work would: the
tables in the order of their foreign keys; new rows INSERTed with each foreign key taken
from the related object, and None or unset columns left to their defaults; stored rows
UPDATEd in the columns whose value changed, by primary key. Then the session lets go of
every object it wrote: nothing later in the batch holds them, and whatever needs one
again loads it from the database.

It declines, writing nothing, when the session holds anything else: a row to delete, or
a child taken out of a collection (the unit of work would delete the orphan).
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Insert, Table, Update, bindparam, inspect
from sqlalchemy.orm import InstanceState, Mapper, RelationshipDirection, Session
from sqlalchemy.orm.attributes import set_committed_value

from maild.db.models import Base

_TABLE_ORDER = {table: index for index, table in enumerate(Base.metadata.sorted_tables)}
_INSERTS: dict[Table, Insert] = {table: table.insert() for table in _TABLE_ORDER}
# SET takes the columns a statement's parameters name; the key comes in as _key_N.
_UPDATES: dict[Table, Update] = {
    table: table.update().where(*[column == bindparam(f"_key_{n}")
                                  for n, column in enumerate(table.primary_key.columns)])
    for table in _TABLE_ORDER
}

_Keys = dict[InstanceState[Any], dict[str, Any]]


def flush_with_core(session: Session) -> bool:
    """Write the session's new and changed objects and detach them; False, having
    written nothing, when there is nothing to write or something it does not write."""
    if session.deleted:
        return False
    new = [inspect(obj) for obj in session.new]
    changed = [inspect(obj) for obj in session.dirty]
    if not new and not changed or any(_removes_children(state) for state in changed):
        return False
    # Parents before children, and within a table in the order they were added, as the
    # unit of work does: a thread's messages are read back in the order of their ids.
    states = sorted([*new, *changed], key=lambda state: (
        _TABLE_ORDER[_table(state.mapper)], state.key is not None, state.insert_order or 0))
    keys: _Keys = {state: {} for state in new}
    connection = session.connection()
    for state in states:
        mapper = state.mapper
        if state.key is None:
            result = connection.execute(_INSERTS[_table(mapper)],
                                        _new_row(state, mapper, keys[state]))
            for column, value in zip(mapper.primary_key, result.inserted_primary_key or (),
                                     strict=True):
                set_committed_value(state.obj(), mapper.get_property_by_column(column).key,
                                    value)
        else:
            changes = _changes(state, mapper)
            if changes:
                # The identity holds the key in the table's order: one table per class.
                changes.update({f"_key_{n}": value for n, value in enumerate(state.key[1])})
                connection.execute(_UPDATES[_table(mapper)], changes)
        _hand_key_to_children(state, mapper, keys)
    for state in states:
        if state.obj() in session:
            session.expunge(state.obj())
    return True


def _table(mapper: Mapper[Any]) -> Table:
    return cast(Table, mapper.local_table)


def _removes_children(state: InstanceState[Any]) -> bool:
    return any(
        state.attrs[relationship.key].history.deleted
        for relationship in state.mapper.relationships
        if relationship.direction is RelationshipDirection.ONETOMANY
    )


def _new_row(state: InstanceState[Any], mapper: Mapper[Any], keys: dict[str, Any]
             ) -> dict[str, Any]:
    """The columns as the unit of work would send them: unset ones and None left to the
    column's default, except where the type stores None as a value (JSON)."""
    values = state.dict
    row: dict[str, Any] = {}
    for prop in mapper.column_attrs:
        if prop.key not in values:
            continue
        value = values[prop.key]
        column = prop.columns[0]
        if value is None and not column.type.should_evaluate_none:
            continue
        row[column.key] = value
    row.update(_parent_keys(state, mapper, changed_only=False))
    row.update(keys)
    return row


def _changes(state: InstanceState[Any], mapper: Mapper[Any]) -> dict[str, Any]:
    """The columns of a stored row whose value changed, and their new values."""
    changes: dict[str, Any] = {}
    for prop in mapper.column_attrs:
        history = state.attrs[prop.key].history
        if history.added and history.added != history.deleted:
            changes[prop.columns[0].key] = history.added[0]
    changes.update(_parent_keys(state, mapper, changed_only=True))
    return changes


def _parent_keys(state: InstanceState[Any], mapper: Mapper[Any], *, changed_only: bool
                 ) -> dict[str, Any]:
    """Foreign keys from the objects this one points to."""
    keys: dict[str, Any] = {}
    for relationship in mapper.relationships:
        if relationship.direction is not RelationshipDirection.MANYTOONE:
            continue
        if changed_only and not state.attrs[relationship.key].history.added:
            continue
        parent = state.dict.get(relationship.key)
        for local, remote in relationship.local_remote_pairs or ():
            if parent is None:
                if changed_only:
                    keys[str(local.key)] = None
                continue
            # getattr: a stored parent's key may be expired (after a savepoint rolled back)
            keys[str(local.key)] = getattr(
                parent, inspect(parent).mapper.get_property_by_column(remote).key)
    return keys


def _hand_key_to_children(state: InstanceState[Any], mapper: Mapper[Any], keys: _Keys
                          ) -> None:
    """A one-to-many collection whose new children do not point back: their foreign key."""
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
                keys[child_state][str(remote.key)] = getattr(state.obj(), key)
