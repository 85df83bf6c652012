"""The push's own statements, run on the database driver's cursor.

SQLAlchemy's Connection.execute() spends ten times the driver's own time on bookkeeping for a
one-row SELECT on SQLite, and builds a Row for every row it returns; a push runs five to eight
statements and reads one row per stored occurrence of its keys. A DriverStatement is the same
Core statement, compiled once for the connection's dialect (and once per number of values in an
IN list), executed on the DB-API cursor inside the transaction the SQLAlchemy connection began.
Its rows are plain tuples, in the statement's column order.

A driver error is raised as SQLAlchemy's own (sqlalchemy.exc.OperationalError, ...), as
execute() would raise it, so a locked database still answers 503 and PostgreSQL's
serialization failures are still retried. What execute() would add and these statements do
not need is left out: Python-side column defaults (every insert here names all its columns)
and type conversion (plain integers, strings and bytes; SQLite returns a boolean as 0 or 1).
"""

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import ClauseElement, Connection, Dialect
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from .sqlite.engine import DriverConnection

# IN lists up to this long have their SQL kept, one per length: a push names at most
# MAX_AGGREGATES keys, and each length kept costs its SQL and how to bind it. The worst case,
# every length of both statements that read the pushed keys, is about 1.5 MB per worker.
# Longer lists are compiled for each call, as execute() would.
MAX_KEPT_LIST_LENGTH = 64

# What a statement's SQL is run with: the driver's parameters, from the statement's own.
_Bind = Callable[[Mapping[str, Any]], Any]


class DriverStatement:
    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        # (dialect name, parameter names, IN lists' lengths) -> (SQL, its parameters' binder)
        self._compiled: dict[tuple[Any, ...], tuple[str, _Bind]] = {}

    def execute(
        self, connection: "Connection | DriverConnection", parameters: Mapping[str, Any]
    ) -> DBAPICursor:
        """Run with one set of parameters; returns the driver's cursor, to fetch from."""
        sql, bind = self._for(connection, parameters)
        return _run(connection, sql, bind(parameters), many=False)

    def rows(
        self, connection: "Connection | DriverConnection", parameters: Mapping[str, Any]
    ) -> Sequence[Any]:
        return self.execute(connection, parameters).fetchall()

    def first(
        self, connection: "Connection | DriverConnection", parameters: Mapping[str, Any]
    ) -> Any:
        return self.execute(connection, parameters).fetchone()

    def execute_many(
        self, connection: "Connection | DriverConnection", rows: Sequence[Mapping[str, Any]]
    ) -> DBAPICursor:
        """Run once per dict of parameters in rows (which must share their keys)."""
        sql, bind = self._for(connection, rows[0])
        return _run(connection, sql, [bind(row) for row in rows], many=True)

    def _for(
        self, connection: "Connection | DriverConnection", parameters: Mapping[str, Any]
    ) -> tuple[str, _Bind]:
        dialect = connection.dialect
        expanded = tuple(
            (name, len(value)) for name, value in parameters.items() if type(value) is list
        )
        key = (dialect.name, tuple(parameters), expanded)
        found = self._compiled.get(key)
        if found is None:
            found = self._compile(dialect, parameters, expanded)
            if all(length <= MAX_KEPT_LIST_LENGTH for _, length in expanded):
                self._compiled[key] = found
        return found

    def _compile(
        self, dialect: Dialect, parameters: Mapping[str, Any], expanded: tuple[tuple[str, int], ...]
    ) -> tuple[str, _Bind]:
        """(SQL, bind): bind(parameters) gives the driver's parameters for that SQL."""
        compiled = self.statement.compile(dialect=dialect, column_keys=list(parameters))
        state = compiled.construct_expanded_state(parameters)  # type: ignore[attr-defined]
        # How to get each parameter of the expanded SQL: a plain one by its name; an IN
        # list's values (SQLAlchemy names them name_1, name_2, ...) by their place in the
        # list; a literal the statement holds (revision + 1) is its own value.
        getters: dict[str, _Bind] = {name: operator.itemgetter(name) for name in parameters}
        for name, length in expanded:
            for index in range(length):
                getters[f"{name}_{index + 1}"] = _item_of(name, index)
        names = state.positiontup if dialect.positional else list(state.parameters)
        picks = [getters.get(name) or _constant(state.parameters[name]) for name in names]
        if dialect.positional:
            return state.statement, lambda values: tuple([pick(values) for pick in picks])
        return state.statement, lambda values: {
            name: pick(values) for name, pick in zip(names, picks, strict=True)
        }


def _item_of(name: str, index: int) -> _Bind:
    return lambda values: values[name][index]


def _constant(value: Any) -> _Bind:
    return lambda _values: value


def run_sql(
    connection: "Connection | DriverConnection",
    sql: str,
    parameters: Sequence[Any] | Mapping[str, Any] = (),
) -> DBAPICursor:
    """Run SQL text on the driver's cursor (a BEGIN: see engines.py), as a DriverStatement runs
    its statement; returns the cursor."""
    return _run(connection, sql, parameters, many=False)


def _run(
    connection: "Connection | DriverConnection", sql: str, parameters: Any, many: bool
) -> DBAPICursor:
    cursor = connection.connection.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
    except connection.dialect.loaded_dbapi.Error as error:
        cursor.close()
        raise DBAPIError.instance(
            sql,
            parameters,
            error,
            connection.dialect.loaded_dbapi.Error,
            dialect=connection.dialect,
        ) from error
    return cursor
