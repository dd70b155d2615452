"""DuckDB store: the floor of the house. Imports nothing from the domain."""

from assets.store.db import SCHEMA_VERSION, append, connect, transaction

__all__ = ["connect", "transaction", "append", "SCHEMA_VERSION"]
