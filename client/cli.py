"""`notarychain`: the command line for applicants, notary officers and verifiers."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ledger import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="notarychain",
        description="Register evidence, follow notarizations and verify proofs on a Notary chain.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return 0
