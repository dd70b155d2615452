"""Prefect flows: the operations face (nightly ingestion, sensor drain, backfill, demo).

They live in the package so the installed `assets` works from any folder; the checkout's top-level
`flows/` holds only deployment entry points that call these.
"""
