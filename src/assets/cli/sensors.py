"""`assets sensors ...` commands (being built; see the issue tracker)."""

import argparse


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the `sensors` command group to the parser."""
