"""What one timed call of each benchmark class loads, and what each container holds on disk:
counts and sizes, not timings.

Recorded with every run (same environment, dataset and IMGLOAD_PROFILE as the timings),
so `imgload report` can turn seconds per call into seconds per image and megapixels/s, and
put each container's size on disk beside its time.
"""

import math

from imgload import containers, datasets, suite

# the benchmark classes that read a whole container per call, and so the datasets whose
# containers' sizes the report shows beside their times
CONTAINER_LOADS = [group for group, (_, what) in suite.LOADS.items() if what == "containers"]


class Sample:
    params = (list(suite.LOADS),)
    param_names = ["benchmark"]
    timeout = 300

    def setup_cache(self):
        return suite.prepare_roles()

    setup_cache.timeout = suite.SETUP_CACHE_TIMEOUT  # seconds without output, see suite

    def track_images_per_call(self, roots, benchmark):
        dataset, what = suite.LOADS[benchmark]
        if roots[dataset] is None:  # not writable in this environment (suite.prepare_roles)
            return math.nan
        return suite.images_per_call(roots[dataset], what)

    track_images_per_call.unit = "images"

    def track_pixels_per_image(self, roots, benchmark):
        root = roots[suite.LOADS[benchmark][0]]
        return math.nan if root is None else suite.pixels_per_image(root)

    track_pixels_per_image.unit = "pixels"

    def track_container_bytes_per_image(self, roots, benchmark, container):
        """The container's files, as index.json records their sizes (prepare writes them, `data
        verify` checks them), over the images it holds: per image, so the figure does not depend
        on IMGLOAD_PROFILE (a container always holds the default profile's sample); the report
        multiplies it by the images one call reads. n/a (NaN) where the dataset has no such
        container (a manifest may leave some out)."""
        entry = datasets.load_index(roots[suite.LOADS[benchmark][0]]).get("containers")
        if entry is None or container not in entry["packed"]:
            return math.nan
        return entry["packed"][container]["total_bytes"] / len(entry["indices"])

    track_container_bytes_per_image.unit = "bytes"
    # A grid of its own (asv reads params from the method before the class), in this class so
    # that it shares its setup_cache (one per environment; tests/test_asv counts them) and, as
    # a record of the Sample group, stays out of the report's per-benchmark tables. No setup()
    # here: it would change the counts' asv versions (their source text includes the class's
    # setup) and orphan their stored results.
    track_container_bytes_per_image.params = (CONTAINER_LOADS, list(containers.CONTAINERS))
    track_container_bytes_per_image.param_names = ["benchmark", "container"]
