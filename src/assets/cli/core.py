"""`assets demo | nightly | claims | query` (the spine)."""

import argparse


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the core commands to the parser."""
