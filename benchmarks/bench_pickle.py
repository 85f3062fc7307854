"""Pickle and .npy files -> ndarrays: per-image files and whole CIFAR batches."""

from imgload import suite
from imgload.decoders import ARRAY_LOADERS
from imgload.execution import EXECUTIONS, THREAD_PATTERNS

from .common import SmallDataset


class ArrayFiles(SmallDataset):
    """One 32x32x3 array per file, as ndarray.dump (p2), pickle protocol 5 or np.save wrote it."""

    params = (
        list(ARRAY_LOADERS),
        ["pickle-p2", "pickle-p5", "npy"],
        list(EXECUTIONS),
        list(suite.CACHES),
    )
    param_names = ["loader", "format", "execution", "cache"]

    def setup(self, root, loader, fmt, execution, cache):
        self.load = suite.FileLoad(root, fmt, loader, execution, cache)

    def time_load(self, root, loader, fmt, execution, cache):
        self.load()


class CifarBatch(SmallDataset):
    """One whole batch (10,000 images) -> (N, 32, 32, 3): the official pickle or one .npy.

    peakmem_load is the process's peak memory, imports and setup included; peakmem_reference
    (scikit-image's idea) is the same process doing nothing timed, so the load's own memory is
    the difference of the two."""

    params = (["pickle", "npy"], list(suite.CACHES))
    param_names = ["format", "cache"]

    def setup(self, root, fmt, cache):
        self.load = suite.BatchLoad(root, fmt, cache)

    def time_load(self, root, fmt, cache):
        self.load()

    def peakmem_load(self, root, fmt, cache):
        self.load()

    def peakmem_reference(self, root, fmt, cache):
        pass


class PickleThreadPatterns(SmallDataset):
    """The memo's threads on its pickles: one ndarray.dump file (pickle protocol 2) per 32x32
    image, read with pickle.load, cold and warm; `threads-3` beside the memo's `queue-3`, with
    `sequential` for the speedup (bench_decode.ThreadPatterns has the same for OpenCV's JPEGs).
    Only this loader and format: the memo's; the grid of ArrayFiles has the others."""

    params = (list(THREAD_PATTERNS), list(suite.CACHES))
    param_names = ["execution", "cache"]

    def setup(self, root, execution, cache):
        self.load = suite.FileLoad(root, "pickle-p2", "pickle", execution, cache)

    def time_load(self, root, execution, cache):
        self.load()
