"""What the suite's harness costs: a bare `for f in files: decode(f)` loop beside the
suite's `sequential` execution, same decoder, same warm files. `imgload report` prints
their ratio; the goal is within 3%."""

from imgload import suite
from imgload.decoders import IMAGE_DECODERS


class Overhead:
    params = (list(IMAGE_DECODERS), ["png", "jpeg"])
    param_names = ["decoder", "format"]
    number = 1
    warmup_time = 0
    repeat = 10  # a few-percent difference needs more samples than the grid takes
    rounds = 1
    timeout = 300
    load = None

    def setup_cache(self):
        return suite.prepare(suite.small_dataset())

    setup_cache.timeout = 600

    def setup(self, root, decoder, fmt):
        self.load = suite.FileLoad(root, fmt, decoder, "sequential", "warm")
        self.files, self.decode = self.load.files, self.load.runner.load

    def teardown(self, root, decoder, fmt):
        if self.load is not None:
            self.load.close()
            self.load = None

    def time_bare_loop(self, root, decoder, fmt):
        decode = self.decode
        for f in self.files:
            decode(f)

    def time_sequential(self, root, decoder, fmt):
        self.load()
