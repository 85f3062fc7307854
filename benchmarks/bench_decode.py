"""Image files -> RGB uint8 ndarrays: decoder x format x execution x page-cache state."""

from imgload import suite
from imgload.decoders import IMAGE_DECODERS
from imgload.execution import EXECUTIONS


class _ImageFiles:
    params = (list(IMAGE_DECODERS), ["png", "jpeg"], list(EXECUTIONS), list(suite.CACHES))
    param_names = ["decoder", "format", "execution", "cache"]
    # setup (eviction for cold) runs before every timed call; one call per sample
    number = 1
    warmup_time = 0
    repeat = suite.REPEAT  # samples: ROUNDS x REPEAT, interleaved across stacks
    rounds = suite.ROUNDS
    timeout = 300
    load = None

    def setup(self, root, decoder, fmt, execution, cache):
        self.load = suite.FileLoad(root, fmt, decoder, execution, cache)

    def teardown(self, root, decoder, fmt, execution, cache):
        if self.load is not None:  # asv tears down after a skipped (n/a) setup too
            self.load.close()
            self.load = None

    def time_decode(self, root, decoder, fmt, execution, cache):
        self.load()


class SmallImages(_ImageFiles):
    """CIFAR-sized 32x32 images: per-file overhead dominates."""

    def setup_cache(self):
        return suite.prepare(suite.small_dataset())

    setup_cache.timeout = suite.SETUP_CACHE_TIMEOUT  # seconds without output, see suite


class LargeImages(_ImageFiles):
    """ImageNet-sized 500x375 images: decoding dominates."""

    def setup_cache(self):
        return suite.prepare(suite.large_dataset())

    setup_cache.timeout = suite.SETUP_CACHE_TIMEOUT  # seconds without output, see suite
