"""Prefect deployment entry points (run from a checkout: `python -m flows.nightly --serve`).

The flow code lives in the installed package (`assets.flows`); these modules only parse a command
line and call it, so nothing in `assets` ever imports this top-level `flows` package.
"""
