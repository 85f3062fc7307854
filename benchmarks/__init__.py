# asv imports this package from the working tree but puts only the package itself on the
# import path; the suite's shared library, imgload, lives beside it.
import os
import sys

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)
