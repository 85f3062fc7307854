"""What the suite's harness costs: a bare `for f in files: decode(f)` loop beside the
suite's `sequential` execution, same decoder, same warm files. `imgload report` prints
their ratio; the goal is within 3%.

The two time_ benchmarks give each loop's time on the site; the ratio itself is measured
by track_sequential_over_bare from interleaved pairs, because two medians taken minutes
apart on a shared machine differ by more than the few percent in question.
"""

import gc
import statistics
import time

from imgload import suite
from imgload.decoders import IMAGE_DECODERS

from .common import SmallDataset

PAIRS = 11


class Overhead(SmallDataset):
    params = (list(IMAGE_DECODERS), ["png", "jpeg"])
    param_names = ["decoder", "format"]
    repeat = 3  # each loop's time for the site; the ratio comes from the paired track below
    rounds = 1

    def setup(self, root, decoder, fmt):
        self.load = suite.FileLoad(root, fmt, decoder, "sequential", "warm")
        self.files, self.decode = self.load.files, self.load.runner.load

    def bare_loop(self):
        decode = self.decode
        for f in self.files:
            decode(f)

    def time_bare_loop(self, root, decoder, fmt):
        self.bare_loop()

    def track_sequential_over_bare(self, root, decoder, fmt):
        """Median over PAIRS of (suite's sequential time / bare loop time), run back to back,
        with the garbage collector off as asv's time_ benchmarks have it."""
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            ratios = [self._pair(i) for i in range(PAIRS)]
        finally:
            if gc_was_enabled:
                gc.enable()
        return statistics.median(ratios)

    def _pair(self, i: int) -> float:
        """One bare loop and one suite call, in alternating order; their time ratio."""
        first, second = (self.bare_loop, self.load) if i % 2 == 0 else (self.load, self.bare_loop)
        t0 = time.perf_counter()
        first()
        t1 = time.perf_counter()
        second()
        t2 = time.perf_counter()
        bare, sequential = (t1 - t0, t2 - t1) if i % 2 == 0 else (t2 - t1, t1 - t0)
        return sequential / bare

    track_sequential_over_bare.unit = "ratio"

    def time_sequential(self, root, decoder, fmt):
        self.load()
