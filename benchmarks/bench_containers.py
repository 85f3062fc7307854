"""Packed datasets -> RGB uint8 arrays: the sample's JPEGs from WebDataset tar shards, zip, LMDB,
HDF5 (bytes, and decoded pixels), Parquet and a raw memmap, in storage order and shuffled, cold
and warm, against the per-file `jpeg` benchmarks on the same images (imgload.containers).

Sequential only: a pool would time the pool again (bench_decode has those); the question here is
what the layout costs. The grid is cut to fit `make bench`'s budget (20 minutes for three stacks
x two rounds on 2 cores, of which the containers may take about 2.5): every combination costs
asv some 0.2 to 0.5 s of its own per stack and round (a fork, setup, the result), beside its
four timed calls and their setups, so the number of combinations decides the cost:

- SmallContainers: every container x order x cache (28): at 32x32 the decode is ~25 us, so a
  container's per-image overhead and its access pattern are most of what is measured.
- LargeContainers: every container x cache, storage order only (14): at 500x375 the decode
  (~1.4 ms) dwarfs any container's per-image overhead, and with 32 images of ~84 KB a shuffled
  read of a 2.7 MB file is the same few disk reads as a sequential one; what differs is what
  cold costs, above all for the decoded containers, which read 6.7 times the bytes.
- ContainerOpen: every container x cache on the small set (14): what a loader's worker pays
  once, separate from the per-image cost (for wds: the first shard's first image).
"""

from imgload import containers, suite

from .common import LargeDataset, SmallDataset


class SmallContainers(SmallDataset):
    """CIFAR-sized 32x32 images: the container's own per-image cost against a ~25 us decode."""

    params = (list(containers.CONTAINERS), list(containers.ORDERS), list(suite.CACHES))
    param_names = ["container", "order", "cache"]

    def setup(self, root, container, order, cache):
        self.load = suite.ContainerLoad(root, container, order, cache)

    def time_read(self, root, container, order, cache):
        self.load()


class LargeContainers(LargeDataset):
    """ImageNet-sized 500x375 images, in storage order: what cold costs each layout."""

    params = (list(containers.CONTAINERS), ["sequential"], list(suite.CACHES))
    param_names = ["container", "order", "cache"]

    def setup(self, root, container, order, cache):
        self.load = suite.ContainerLoad(root, container, order, cache)

    def time_read(self, root, container, order, cache):
        self.load()


class ContainerOpen(SmallDataset):
    """Opening a container, once per worker: the file, its own index (a zip's central directory,
    a parquet footer, HDF5's superblock and dataset header, LMDB's meta pages); for wds, reading
    the first shard's first image, which is what opening a tar stream is."""

    params = (list(containers.CONTAINERS), list(suite.CACHES))
    param_names = ["container", "cache"]

    def setup(self, root, container, cache):
        self.load = suite.ContainerOpen(root, container, cache)

    def time_open(self, root, container, cache):
        self.load()
