"""Prefect flows: the operations face of the platform (nightly ingestion, sensors, backfill)."""
