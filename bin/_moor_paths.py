"""sys.path as site.py would make it for moorage, for the launchers run with -S.

site.py and the .pth files of site-packages cost ~2 ms of every start (a tenth of a
`moor-runtime run`, measured with bench/runtime.py; of a `moor run --rm`, with
bench/cli.py). The launchers import this module from their own directory (sys.path[0])
and find moorage here instead.
"""

import os
import sys


def add_site_packages(script: str) -> None:
    """The venv's site-packages and the paths its .pth files name (an editable
    install's checkout); import lines, such as setuptools' distutils shim, are not
    moorage's and are skipped. Outside a venv, site.py does it."""
    venv = os.path.dirname(os.path.dirname(os.path.abspath(script)))
    if not os.path.exists(os.path.join(venv, "pyvenv.cfg")):
        import site

        site.main()
        return
    packages = os.path.join(venv, "lib", "python%d.%d" % sys.version_info[:2], "site-packages")
    sys.path.append(packages)
    for name in sorted(os.listdir(packages)):
        if name.endswith(".pth"):
            with open(os.path.join(packages, name)) as pth:
                for line in pth:
                    line = line.strip()
                    if line and not line.startswith(("#", "import ", "import\t")):
                        sys.path.append(os.path.join(packages, line))
