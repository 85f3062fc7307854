import os

import pytest

from imgload import datasets, pagecache


def test_cold_then_warm_then_cold(tiny):
    files = datasets.sample_files(tiny, "png", "full")
    pagecache.make_cold(files)
    assert pagecache.resident_fraction(files) == 0.0
    pagecache.make_warm(files)
    assert pagecache.resident_fraction(files) == 1.0
    pagecache.make_cold(files)
    assert pagecache.resident_fraction(files) == 0.0


def test_partial_residency_is_measured(tiny_large):
    files = datasets.sample_files(tiny_large, "png", "full")
    pagecache.make_cold(files)
    pagecache.warm(files[:2])
    frac = pagecache.resident_fraction(files)
    sizes = [os.path.getsize(f) for f in files]
    assert frac == pytest.approx(sum(sizes[:2]) / sum(sizes), abs=0.02)


def test_cachestat_and_mincore_agree(tiny_large):
    files = datasets.sample_files(tiny_large, "png", "full")
    pagecache.make_cold(files)
    pagecache.warm(files[:3])
    try:
        fast = [pagecache.resident_pages(f, "cachestat") for f in files]
    except pagecache.PageCacheError as e:
        pytest.skip(f"kernel without cachestat: {e}")
    assert fast == [pagecache.resident_pages(f, "mincore") for f in files]
    assert [c > 0 for c, _ in fast] == [True] * 3 + [False] * (len(files) - 3)


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no tmpfs at /dev/shm")
def test_cold_cache_that_cannot_be_reached_is_an_error(tmp_path):
    # tmpfs pages are the file itself: eviction cannot drop them, and make_cold must say so
    path = os.path.join("/dev/shm", f"imgload-test-{os.getpid()}")
    with open(path, "wb") as f:
        f.write(os.urandom(8192))
    try:
        with pytest.raises(pagecache.PageCacheError, match="cold cache not reached"):
            pagecache.make_cold([path])
    finally:
        os.unlink(path)
