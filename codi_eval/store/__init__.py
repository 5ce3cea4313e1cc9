"""The SQL store: one schema for PostgreSQL and the embedded SQLite default."""

from codi_eval.store.engine import SchemaBehind, Store, StoreError, ensure_schema, upgrade

__all__ = ["SchemaBehind", "Store", "StoreError", "ensure_schema", "upgrade"]
