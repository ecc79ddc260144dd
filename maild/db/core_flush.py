"""A step's changes written with plain statements instead of the unit of work.

A new ticket is six rows (the ticket, its requester, its first event, the customer's
message, the acknowledgment kept in the thread and its outbox entry); a customer's
reply is a new message and event and a changed ticket. The unit of work spends several
times longer sorting, syncing and bookkeeping them than the statements take, and the
intake writes such a set for every message of a backlog.

`flush_with_core` writes what the session holds the way the unit of work would: the
tables in the order of their foreign keys; new rows INSERTed with each foreign key taken
from the related object, and None or unset columns left to their defaults, each sent
straight to the driver (driver_inserts.py); stored rows UPDATEd with Core in the columns
whose value changed, by primary key. Then the session lets go of every object it wrote:
nothing later in the batch holds them, and whatever needs one again loads it from the
database.

It declines, writing nothing, when the session holds anything else: a row to delete, or
a child taken out of a collection (the unit of work would delete the orphan).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, cast

from sqlalchemy import Table, Update, bindparam, inspect
from sqlalchemy.orm import (
    InstanceState,
    Mapper,
    RelationshipDirection,
    Session,
    make_transient,
)
from sqlalchemy.orm.attributes import set_committed_value

from maild.db.driver_inserts import insert_row
from maild.db.models import Base

_TABLE_ORDER = {table: index for index, table in enumerate(Base.metadata.sorted_tables)}
# SET takes the columns a statement's parameters name; the key comes in as _key_N.
_UPDATES: dict[Table, Update] = {
    table: table.update().where(*[column == bindparam(f"_key_{n}")
                                  for n, column in enumerate(table.primary_key.columns)])
    for table in _TABLE_ORDER
}

_Keys = dict[InstanceState[Any], dict[str, Any]]


@dataclass(frozen=True)
class _Plan:
    """What writing a row of one class needs to know of its mapping, worked out once."""

    table: Table
    columns: tuple[tuple[str, str, bool], ...]  # attribute, column, None is a value
    column_of: dict[str, str]  # attribute -> column
    primary_key: tuple[str, ...]  # attributes, in the table's order
    # many-to-one: relationship, and each (column here, attribute of the parent)
    parents: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
    # one-to-many: relationship, whether a list, and each (attribute here, child column)
    children: tuple[tuple[str, bool, tuple[tuple[str, str], ...]], ...]


@cache
def _plan(mapper: Mapper[Any]) -> _Plan:
    columns = tuple((prop.key, prop.columns[0].key, prop.columns[0].type.should_evaluate_none)
                    for prop in mapper.column_attrs)
    parents, children = [], []
    for relationship in mapper.relationships:
        pairs = relationship.local_remote_pairs or ()
        if relationship.direction is RelationshipDirection.MANYTOONE:
            parents.append((relationship.key, tuple(
                (str(local.key), relationship.mapper.get_property_by_column(remote).key)
                for local, remote in pairs)))
        elif relationship.direction is RelationshipDirection.ONETOMANY:
            children.append((relationship.key, bool(relationship.uselist), tuple(
                (mapper.get_property_by_column(local).key, str(remote.key))
                for local, remote in pairs)))
    return _Plan(
        table=cast(Table, mapper.local_table),
        columns=columns,
        column_of={attribute: column for attribute, column, _ in columns},
        primary_key=tuple(mapper.get_property_by_column(c).key for c in mapper.primary_key),
        parents=tuple(parents),
        children=tuple(children),
    )


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
        _TABLE_ORDER[_plan(state.mapper).table], state.key is not None,
        state.insert_order or 0))
    keys: _Keys = {state: {} for state in new}
    connection = session.connection()
    for state in states:
        plan = _plan(state.mapper)
        if state.key is None:
            [attribute] = plan.primary_key
            set_committed_value(state.obj(), attribute, insert_row(
                connection, plan.table, _new_row(state, plan, keys[state])))
        else:
            changes = _changes(state, plan)
            if changes:
                # The identity holds the key in the table's order: one table per class.
                changes.update({f"_key_{n}": value for n, value in enumerate(state.key[1])})
                connection.execute(_UPDATES[plan.table], changes)
        _hand_key_to_children(state, plan, keys)
    for state in states:
        make_transient(state.obj())  # out of the session, one by one: no cascade to walk
    return True


def _removes_children(state: InstanceState[Any]) -> bool:
    return any(state.attrs[relationship].history.deleted
               for relationship, _, _ in _plan(state.mapper).children
               if relationship in state.committed_state)


def _new_row(state: InstanceState[Any], plan: _Plan, keys: dict[str, Any]) -> dict[str, Any]:
    """The columns as the unit of work would send them: unset ones and None left to the
    column's default, except where the type stores None as a value (JSON)."""
    values = state.dict
    row: dict[str, Any] = {}
    for attribute, column, none_is_a_value in plan.columns:
        if attribute in values:
            value = values[attribute]
            if value is not None or none_is_a_value:
                row[column] = value
    row.update(_parent_keys(state, plan, changed_only=False))
    row.update(keys)
    return row


def _changes(state: InstanceState[Any], plan: _Plan) -> dict[str, Any]:
    """The columns of a stored row whose value changed, and their new values: of the
    attributes set since it was loaded, those whose value differs."""
    changes: dict[str, Any] = {}
    for attribute in state.committed_state:
        column = plan.column_of.get(attribute)
        if column is None:
            continue
        history = state.attrs[attribute].history
        if history.added and history.added != history.deleted:
            changes[column] = history.added[0]
    changes.update(_parent_keys(state, plan, changed_only=True))
    return changes


def _parent_keys(state: InstanceState[Any], plan: _Plan, *, changed_only: bool
                 ) -> dict[str, Any]:
    """Foreign keys from the objects this one points to."""
    keys: dict[str, Any] = {}
    for relationship, pairs in plan.parents:
        if changed_only and (relationship not in state.committed_state
                             or not state.attrs[relationship].history.added):
            continue
        parent = state.dict.get(relationship)
        for column, parent_attribute in pairs:
            if parent is None:
                if changed_only:
                    keys[column] = None
                continue
            # getattr: a stored parent's key may be expired (after a savepoint rolled back)
            keys[column] = getattr(parent, parent_attribute)
    return keys


def _hand_key_to_children(state: InstanceState[Any], plan: _Plan, keys: _Keys) -> None:
    """A one-to-many collection whose new children do not point back: their foreign key."""
    for relationship, uselist, pairs in plan.children:
        children = state.dict.get(relationship)
        if children is None:
            continue
        for child in children if uselist else [children]:
            child_state = inspect(child)
            if child_state not in keys:
                continue
            for attribute, child_column in pairs:
                keys[child_state][child_column] = getattr(state.obj(), attribute)
