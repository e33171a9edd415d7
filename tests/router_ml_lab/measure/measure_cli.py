"""Run the measure subcommands the way ``router-ml`` does."""

from __future__ import annotations

import argparse

from router_ml_lab.measure.cli import register


def run_measure(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="router-ml")
    register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.func(args))
