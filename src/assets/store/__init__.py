"""DuckDB store: the floor of the house. Imports nothing from the domain."""

from assets.store.db import connect, transaction, append, SCHEMA_VERSION

__all__ = ["connect", "transaction", "append", "SCHEMA_VERSION"]
