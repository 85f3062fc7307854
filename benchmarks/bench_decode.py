"""Image files -> RGB uint8 ndarrays: decoder x format x execution x page-cache state."""

from imgload import suite
from imgload.decoders import IMAGE_DECODERS
from imgload.execution import EXECUTIONS, THREAD_PATTERNS, TRANSFERS

from .common import LargeDataset, SmallDataset


class _ImageFiles:
    params = (list(IMAGE_DECODERS), ["png", "jpeg"], list(EXECUTIONS), list(suite.CACHES))
    param_names = ["decoder", "format", "execution", "cache"]

    def setup(self, root, decoder, fmt, execution, cache):
        self.load = suite.FileLoad(root, fmt, decoder, execution, cache)

    def time_decode(self, root, decoder, fmt, execution, cache):
        self.load()


class SmallImages(_ImageFiles, SmallDataset):
    """CIFAR-sized 32x32 images: per-file overhead dominates."""


class LargeImages(_ImageFiles, LargeDataset):
    """ImageNet-sized 500x375 images: decoding dominates."""


# Two narrower questions, each in a class of its own rather than as executions of the whole
# grid above: threads-3 / queue-3 / processes-2-pickle for every decoder, format and cache
# would add about 160 combinations per stack to `make bench`, and would answer nothing the
# grid's threads-2, threads-4 and processes-2 do not already answer for them.


class ThreadPatterns(SmallDataset):
    """The memo's threads, on its files: 32x32 JPEGs with OpenCV, cold and warm. `threads-3`
    (a pool of 3 threads given the files in a few chunks) beside `queue-3` (the memo's own
    pattern: one queue.Queue of paths, 3 threads, task_done / join), with `sequential` for
    the speedup, so a reader sees what handing over one path at a time costs."""

    params = (list(THREAD_PATTERNS), list(suite.CACHES))
    param_names = ["execution", "cache"]

    def setup(self, root, execution, cache):
        self.load = suite.FileLoad(root, "jpeg", "cv2", execution, cache)

    def time_decode(self, root, execution, cache):
        self.load()


class ProcessTransfer(LargeDataset):
    """How decoded arrays come back from process workers: 500x375 JPEGs with OpenCV, warm.
    `processes-2` hands them over in shared memory (the grid's, and a data loader's, way);
    `processes-2-pickle` sends each 560 KB array through a pipe, the cost the suite's process
    pool paid before. One decoder and format: the transfer does not depend on the decoder,
    and it weighs most where decoding is fastest, large JPEGs."""

    params = (list(TRANSFERS),)
    param_names = ["execution"]

    def setup(self, root, execution):
        self.load = suite.FileLoad(root, "jpeg", "cv2", execution, "warm")

    def time_decode(self, root, execution):
        self.load()
