"""Images as they come beyond the grid's PNG and JPEG: JPEG at other settings, WebP, AVIF, JPEG XL
and HEIC at the ImageNet size, and PNG and JPEG at 1024 px and at a 12 MP camera's size.

Sequential, warm, from a file, every decoder that can read the format: these classes ask how the
format or the size changes each decoder's time, a question the pooled and cold grid
(bench_decode) answers for PNG and JPEG at two sizes and need not answer again here. Each reads
the whole sample of a small generated set of its own (datasets/synthetic-formats.toml,
synthetic-1024.toml, synthetic-12mp.toml), written once by `make data` (imgload.materialize
says with which encoder and settings; index.json records them and their versions).
"""

from imgload import decoders, suite
from imgload.materialize import JPEG_VARIANTS, NEW_IMAGE_FORMATS

from .common import CameraDataset, FormatsDataset, MediumDataset


def _readers(*codecs: str) -> list[str]:
    """The suite's image decoders that read any of `codecs` (the others would be n/a in every
    combination, and each n/a costs a benchmark process)."""
    return [
        name for name in decoders.ALL_IMAGE_DECODERS if decoders.LOADERS[name][0] & set(codecs)
    ]


class _Decode:
    param_names = ["decoder", "format"]

    def setup(self, root, decoder, fmt):
        self.load = suite.CodecLoad(root, fmt, decoder, "file", whole=True)

    def time_decode(self, root, decoder, fmt):
        self.load()


class JpegVariants(_Decode, FormatsDataset):
    """500x375 JPEGs as photos come: the grid's baseline (quality 90, 4:2:0) beside quality 75
    and 95, 4:4:4 chroma, and a progressive scan, each one setting away from the baseline."""

    params = (_readers("jpeg"), ["jpeg", *JPEG_VARIANTS])


class NewFormats(_Decode, FormatsDataset):
    """500x375 images as WebP, AVIF, JPEG XL and HEIC files (the same pictures as
    JpegVariants'), with every decoder that reads one of them."""

    params = (_readers(*NEW_IMAGE_FORMATS), list(NEW_IMAGE_FORMATS))


class MediumCodecs(_Decode, MediumDataset):
    """1024x768 PNGs and JPEGs."""

    params = (_readers("png", "jpeg"), ["png", "jpeg"])


class CameraCodecs(_Decode, CameraDataset):
    """4000x3000 (12 MP) JPEGs, what a camera writes."""

    params = (_readers("jpeg"), ["jpeg"])
