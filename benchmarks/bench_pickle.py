"""Pickle and .npy files -> ndarrays: per-image files and whole CIFAR batches."""

from imgload import suite
from imgload.decoders import ARRAY_LOADERS
from imgload.execution import EXECUTIONS, THREAD_PATTERNS


class ArrayFiles:
    """One 32x32x3 array per file, as ndarray.dump (p2), pickle protocol 5 or np.save wrote it."""

    params = (list(ARRAY_LOADERS), ["pickle-p2", "pickle-p5", "npy"], list(EXECUTIONS), list(suite.CACHES))
    param_names = ["loader", "format", "execution", "cache"]
    number = 1
    warmup_time = 0
    repeat = suite.REPEAT  # samples: ROUNDS x REPEAT, interleaved across stacks
    rounds = suite.ROUNDS
    timeout = 300

    def setup_cache(self):
        return suite.prepare(suite.small_dataset())

    setup_cache.timeout = suite.SETUP_CACHE_TIMEOUT  # seconds without output, see suite
    load = None

    def setup(self, root, loader, fmt, execution, cache):
        self.load = suite.FileLoad(root, fmt, loader, execution, cache)

    def teardown(self, root, loader, fmt, execution, cache):
        if self.load is not None:  # asv tears down after a skipped (n/a) setup too
            self.load.close()
            self.load = None

    def time_load(self, root, loader, fmt, execution, cache):
        self.load()


class CifarBatch:
    """One whole batch (10,000 images) -> (N, 32, 32, 3): the official pickle or one .npy."""

    params = (["pickle", "npy"], list(suite.CACHES))
    param_names = ["format", "cache"]
    number = 1
    warmup_time = 0
    repeat = suite.REPEAT
    rounds = suite.ROUNDS
    timeout = 300

    def setup_cache(self):
        return suite.prepare(suite.small_dataset())

    setup_cache.timeout = suite.SETUP_CACHE_TIMEOUT  # seconds without output, see suite

    def setup(self, root, fmt, cache):
        self.load = suite.BatchLoad(root, fmt, cache)

    def time_load(self, root, fmt, cache):
        self.load()

    def peakmem_load(self, root, fmt, cache):
        self.load()


class PickleThreadPatterns:
    """The memo's threads on its pickles: one ndarray.dump file (pickle protocol 2) per 32x32
    image, read with pickle.load, cold and warm; `threads-3` beside the memo's `queue-3`, with
    `sequential` for the speedup (bench_decode.ThreadPatterns has the same for OpenCV's JPEGs).
    Only this loader and format: the memo's; the grid of ArrayFiles has the others."""

    params = (list(THREAD_PATTERNS), list(suite.CACHES))
    param_names = ["execution", "cache"]
    number = 1
    warmup_time = 0
    repeat = suite.REPEAT  # samples: ROUNDS x REPEAT, interleaved across stacks
    rounds = suite.ROUNDS
    timeout = 300
    load = None

    def setup_cache(self):
        return suite.prepare(suite.small_dataset())

    setup_cache.timeout = suite.SETUP_CACHE_TIMEOUT  # seconds without output, see suite

    def setup(self, root, execution, cache):
        self.load = suite.FileLoad(root, "pickle-p2", "pickle", execution, cache)

    def teardown(self, root, execution, cache):
        if self.load is not None:
            self.load.close()
            self.load = None

    def time_load(self, root, execution, cache):
        self.load()
