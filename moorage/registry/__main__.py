import sys

from moorage.registry.cli import main

sys.exit(main(sys.argv[1:]))
