"""A real PyTorch DataLoader over the sample's files (imgload.dataloader): steady state and time
to the first batch, num_workers 0, 2 and 4, cold and warm.

Opt-in: only the stack of asv.torch.conf.json has torch (`make bench-torch`); in the stacks of
asv.conf.json every combination is n/a, with the reason, and costs a setup that raises.
The grid is kept small (two decoders, and the first batch on JPEG only): it answers how the
loader readers run compares with the suite's own pools (bench_decode's `processes-2`,
ProcessTransfer), not which decoder is fastest, which bench_decode and bench_codecs answer.
"""

from imgload import dataloader, suite

from .common import LargeDataset, SmallDataset


class _Epoch:
    params = (
        list(dataloader.DECODERS),
        ["jpeg", "png"],
        list(dataloader.WORKERS),
        list(suite.CACHES),
    )
    param_names = ["decoder", "format", "num_workers", "cache"]

    def setup(self, root, decoder, fmt, workers, cache):
        self.load = dataloader.EpochLoad(root, fmt, decoder, workers, cache)

    def time_epoch(self, root, decoder, fmt, workers, cache):
        self.load()


class SmallDataLoader(_Epoch, SmallDataset):
    """CIFAR-sized 32x32 images: one epoch through a primed loader in batches of 32, the
    profile's sample (1,000 images, SmallImages' files). Per image in the report."""


class LargeDataLoader(_Epoch, LargeDataset):
    """ImageNet-sized 500x375 images: one epoch through a primed loader in batches of 32, every
    training image (255: the 32 of the sample would be one batch, dataloader.epoch_indices).
    Per image in the report."""


class _FirstBatch:
    # JPEG only: what the first batch costs beyond its decode is starting workers and moving
    # one batch, the same for every format; the format's own cost is in the epoch grid
    params = (list(dataloader.DECODERS), ["jpeg"], list(dataloader.WORKERS), list(suite.CACHES))
    param_names = ["decoder", "format", "num_workers", "cache"]

    def setup(self, root, decoder, fmt, workers, cache):
        self.load = dataloader.FirstBatchLoad(root, fmt, decoder, workers, cache)

    def time_first_batch(self, root, decoder, fmt, workers, cache):
        self.load()


class SmallFirstBatch(_FirstBatch, SmallDataset):
    """A fresh loader's first batch of 32x32 images (seconds per call: one batch)."""


class LargeFirstBatch(_FirstBatch, LargeDataset):
    """A fresh loader's first batch of 500x375 images (seconds per call: one batch)."""
