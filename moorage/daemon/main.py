"""Entry point of the ``moord`` daemon (grows with the engine issue)."""

import sys


def main() -> int:
    sys.stderr.write("moord: not implemented yet\n")
    return 1
