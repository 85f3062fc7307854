"""Every image decoder, PNG and JPEG, small and large, from a file or from memory.

The pooled / cold-cache grid (bench_decode) keeps the five decoders it has always had;
this class adds every other decoder a Python data pipeline is likely to use, sequential
and warm only, and asks one more question of all of them: what does reading the file
cost? `file`: the decoder is given the path and opens it, as a loader does; `memory`:
it is given the bytes, read in setup, so the timed call is the decode alone.
"""

from imgload import decoders, suite

from .common import LargeDataset, SmallDataset


class _Codecs:
    params = (list(decoders.ALL_IMAGE_DECODERS), ["png", "jpeg"], list(decoders.SOURCES))
    param_names = ["decoder", "format", "source"]

    def setup(self, root, decoder, fmt, source):
        self.load = suite.CodecLoad(root, fmt, decoder, source)

    def time_decode(self, root, decoder, fmt, source):
        self.load()


class SmallCodecs(_Codecs, SmallDataset):
    """CIFAR-sized 32x32 images: per-file overhead dominates."""


class LargeCodecs(_Codecs, LargeDataset):
    """ImageNet-sized 500x375 images: decoding dominates."""
