"""What every timed benchmark class shares, written once (as numpy's benchmarks/common.py does).

A class states its params and what it times; from here it takes how it is timed and which
dataset it reads:
- `Benchmark`: one call per sample, setup (eviction for cold) before every call, ROUNDS x REPEAT
  samples interleaved across stacks, and a teardown that closes the call's workers.
- `SmallDataset` / `LargeDataset` (and bench_formats' `FormatsDataset`, `MediumDataset`,
  `CameraDataset`): the setup_cache that prepares the dataset and hands its root to every
  benchmark. asv keys a setup_cache by the file and line that define it, so each of
  these runs once per environment for all the classes that inherit it, not once per class.
"""

from imgload import suite


class Benchmark:
    # setup (eviction for cold) runs before every timed call; one call per sample
    number = 1
    warmup_time = 0
    repeat = suite.REPEAT  # samples: ROUNDS x REPEAT, interleaved across stacks (see suite)
    rounds = suite.ROUNDS
    timeout = 300
    load = None  # the timed call, built by each class's setup

    def teardown(self, *params):
        """Close the call's workers and let its inputs' memory go before the next setup.
        asv tears down after a setup that raised NotImplementedError (n/a) too:
        load is None then."""
        if self.load is not None:
            close = getattr(self.load, "close", None)
            if close is not None:
                close()
            self.load = None


class SmallDataset(Benchmark):
    """Reads the small dataset (CIFAR-sized 32x32 images, IMGLOAD_DATASET)."""

    def setup_cache(self):
        return suite.prepare(suite.small_dataset())

    setup_cache.timeout = suite.SETUP_CACHE_TIMEOUT  # seconds without output, see suite


class LargeDataset(Benchmark):
    """Reads the large dataset (ImageNet-sized 500x375 images, IMGLOAD_LARGE_DATASET)."""

    def setup_cache(self):
        return suite.prepare(suite.large_dataset())

    setup_cache.timeout = suite.SETUP_CACHE_TIMEOUT  # seconds without output, see suite


class FormatsDataset(Benchmark):
    """Reads every image format and JPEG variant at 500x375 (IMGLOAD_FORMATS_DATASET)."""

    def setup_cache(self):
        return suite.prepare(suite.dataset("formats"))

    setup_cache.timeout = suite.SETUP_CACHE_TIMEOUT  # seconds without output, see suite


class MediumDataset(Benchmark):
    """Reads 1024x768 images (IMGLOAD_MEDIUM_DATASET)."""

    def setup_cache(self):
        return suite.prepare(suite.dataset("medium"))

    setup_cache.timeout = suite.SETUP_CACHE_TIMEOUT  # seconds without output, see suite


class CameraDataset(Benchmark):
    """Reads 4000x3000 (12 MP) camera-sized images (IMGLOAD_CAMERA_DATASET)."""

    def setup_cache(self):
        return suite.prepare(suite.dataset("camera"))

    setup_cache.timeout = suite.SETUP_CACHE_TIMEOUT  # seconds without output, see suite
