"""`assets crop ...` commands (being built; see the issue tracker)."""

import argparse


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the `crop` command group to the parser."""
