"""Entry point of the ``moor`` command line (grows with the CLI issue)."""

import sys


def main() -> int:
    sys.stderr.write("moor: not implemented yet\n")
    return 1
