"""Every image decoder, PNG and JPEG, small and large, from a file or from memory.

The pooled / cold-cache grid (bench_decode) keeps the five decoders it has always had;
this class adds every other decoder a Python data pipeline is likely to use, sequential
and warm only, and asks one more question of all of them: what does reading the file
cost? `file`: the decoder is given the path and opens it, as a loader does; `memory`:
it is given the bytes, read in setup, so the timed call is the decode alone.
"""

from imgload import datasets, decoders, suite


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class CodecLoad:
    """One timed call: decode bench_codecs' share of the sample from `source`, sequentially."""

    def __init__(self, root: str, fmt: str, decoder: str, source: str):
        self.load = decoders.get(decoder, fmt, source)  # Unavailable (n/a) before any file work
        files = suite.codec_files(root, fmt)
        suite.set_cache("warm", files)
        self.inputs = files if source == "file" else [_read(f) for f in files]
        # the priming decode (a file outside the sample) pays for lazy imports and
        # library initialisation before any timing, as suite.FileLoad's does
        prime = datasets.priming_file(root, fmt)
        self.load(prime if source == "file" else _read(prime))

    def __call__(self):
        load = self.load
        return [load(x) for x in self.inputs]


class _Codecs:
    params = (list(decoders.ALL_IMAGE_DECODERS), ["png", "jpeg"], list(decoders.SOURCES))
    param_names = ["decoder", "format", "source"]
    number = 1
    warmup_time = 0
    repeat = suite.REPEAT  # samples: ROUNDS x REPEAT, interleaved across stacks
    rounds = suite.ROUNDS
    timeout = 300
    load = None

    def setup(self, root, decoder, fmt, source):
        self.load = CodecLoad(root, fmt, decoder, source)

    def teardown(self, root, decoder, fmt, source):
        self.load = None  # the inputs' memory goes before the next benchmark's setup

    def time_decode(self, root, decoder, fmt, source):
        self.load()


class SmallCodecs(_Codecs):
    """CIFAR-sized 32x32 images: per-file overhead dominates."""

    def setup_cache(self):
        return suite.prepare(suite.small_dataset())

    setup_cache.timeout = suite.SETUP_CACHE_TIMEOUT  # seconds without output, see suite


class LargeCodecs(_Codecs):
    """ImageNet-sized 500x375 images: decoding dominates."""

    def setup_cache(self):
        return suite.prepare(suite.large_dataset())

    setup_cache.timeout = suite.SETUP_CACHE_TIMEOUT  # seconds without output, see suite
