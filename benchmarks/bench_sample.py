"""What one timed call of each benchmark class loads: counts, not timings.

Recorded with every run (same environment, dataset and IMGLOAD_PROFILE as the timings),
so `imgload report` can turn seconds per call into seconds per image and megapixels/s.
"""

from imgload import suite


class Sample:
    params = (list(suite.LOADS),)
    param_names = ["benchmark"]
    timeout = 300

    # fmt: off
    def setup_cache(self):
        return {"small": suite.prepare(suite.small_dataset()), "large": suite.prepare(suite.large_dataset())}
    # fmt: on

    setup_cache.timeout = suite.SETUP_CACHE_TIMEOUT  # seconds without output, see suite

    def track_images_per_call(self, roots, benchmark):
        dataset, what = suite.LOADS[benchmark]
        return suite.images_per_call(roots[dataset], what)

    track_images_per_call.unit = "images"

    def track_pixels_per_image(self, roots, benchmark):
        return suite.pixels_per_image(roots[suite.LOADS[benchmark][0]])

    track_pixels_per_image.unit = "pixels"
