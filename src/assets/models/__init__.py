"""Torch models only: no tile I/O, no database. Weights are loaded through `registry`."""
