"""imgload: the library behind the imgload-benchmarks asv suite.

Kept free of imports beyond the standard library and NumPy at import time: the asv
environments hold only the library stacks under test.
"""

__version__ = "0.1.0"
