"""bench_formats: JPEG variants, WebP, AVIF, JPEG XL and HEIC at one size, and PNG and JPEG at
1024 px and 12 MP. How each format is written (imgload.materialize), which decoder reads which
(imgload.decoders), what a stack that cannot write one does, and the classes under a real asv."""

import itertools
import math
import sys

import numpy as np
import pytest
from PIL import Image

from imgload import datasets, decoders, materialize, suite

from .helpers import TINY_FORMATS, asv_quick_in_venv, formats_na_by_design

# Every format here is lossy, and decoders of one format differ in their rounding and chroma
# upsampling: against Pillow's decode of the same file, the closest decoders are bit-identical
# and the farthest, pyvips' AVIF (libheif's upsampling), is at 34.7 dB PSNR at worst, and as close
# to the original pixels as Pillow (35.7 dB against 35.9 on average over the default set). The
# same picture with its channels swapped is at 20.5 dB, shifted by one pixel at 29.5 dB: the
# bound tells a different rounding from a wrong decode.
MIN_PSNR_DB = 32.0
ALL_FORMATS = ("jpeg", *materialize.JPEG_VARIANTS, *materialize.NEW_IMAGE_FORMATS)


@pytest.fixture(scope="module")
def tiny_formats(manifests, data_dir):
    return datasets.prepare(manifests["formats"], data_dir)


def _pillow(path: str) -> np.ndarray:
    """Pillow's decode of a file, with the plugins Pillow's users register for HEIC and JPEG XL."""
    import pillow_heif
    import pillow_jxl  # noqa: F401  (registers itself)

    pillow_heif.register_heif_opener()
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _input(path: str, source: str) -> str | bytes:
    if source == "file":
        return path
    with open(path, "rb") as f:
        return f.read()


def _primed_or_skip(root, name: str, fmt: str, source: str):
    """The loader, primed on the set's priming file as CodecLoad does, or a skip naming why it is
    n/a here (asv shows the same as n/a)."""
    try:
        load = decoders.get(name, fmt, source)
        decoders.primed(name, fmt, load, _input(datasets.priming_file(root, fmt), source))
    except decoders.Unavailable as e:
        pytest.skip(f"n/a: {e}")
    return load


@pytest.mark.parametrize("source", decoders.SOURCES)
@pytest.mark.parametrize("fmt", ALL_FORMATS)
@pytest.mark.parametrize("name", decoders.ALL_IMAGE_DECODERS)
def test_every_decoder_reads_every_format_it_can_as_pillow_does(tiny_formats, name, fmt, source):
    """Same shape and dtype as Pillow's decode of the same file, and within MIN_PSNR_DB of it
    (the channel order: test_every_decoder_returns_rgb_order_in_every_format)."""
    load = _primed_or_skip(tiny_formats, name, fmt, source)
    index = datasets.load_index(tiny_formats)
    for path in datasets.sample_files(tiny_formats, fmt):
        expected = _pillow(path)
        got = load(_input(path, source))
        assert isinstance(got, np.ndarray) and got.dtype == np.uint8, (name, path)
        assert got.shape == expected.shape == tuple(index["shape"]), (name, path)
        error = np.mean((got.astype(float) - expected) ** 2)
        psnr = math.inf if error == 0 else 10 * math.log10(255**2 / error)
        assert psnr >= MIN_PSNR_DB, (name, path, psnr)


@pytest.mark.parametrize("fmt", materialize.NEW_IMAGE_FORMATS + ("jpeg-444",))
@pytest.mark.parametrize("name", decoders.ALL_IMAGE_DECODERS)
def test_every_decoder_returns_rgb_order_in_every_format(tmp_path, name, fmt):
    img = np.zeros((16, 48, 3), np.uint8)
    img[:, :16, 0] = 255  # red, green, blue stripes
    img[:, 16:32, 1] = 255
    img[:, 32:, 2] = 255
    path = tmp_path / f"rgb{materialize.SUFFIX[fmt]}"
    path.write_bytes(materialize.encode(fmt, img))
    try:
        load = decoders.get(name, fmt)
        a = decoders.primed(name, fmt, load, str(path)).astype(int)
    except decoders.Unavailable as e:
        pytest.skip(f"n/a: {e}")
    for stripe in range(3):
        mean = a[4:12, stripe * 16 + 4 : stripe * 16 + 12].mean(axis=(0, 1))
        assert mean.argmax() == stripe and mean[stripe] > 200, (name, fmt, stripe, mean)


@pytest.mark.parametrize("fmt", materialize.NEW_IMAGE_FORMATS)
def test_the_readers_of_each_format_here_are_the_newest_stack_s(tiny_formats, fmt):
    """.venv pins what the newest stack pins, so the decoders that read each format here are the
    ones measured there: a decoder that stops reading one (a priming failure taken for a build
    without the codec) fails this test instead of turning n/a unnoticed."""
    readers = set()
    for name in decoders.ALL_IMAGE_DECODERS:
        try:
            load = decoders.get(name, fmt)
            decoders.primed(name, fmt, load, datasets.priming_file(tiny_formats, fmt))
        except decoders.Unavailable:
            continue
        readers.add(name)
    assert readers == {n for n in decoders.ALL_IMAGE_DECODERS if not formats_na_by_design(n, fmt)}
    assert {"pil", "imageio", "skimage"} <= readers  # through Pillow and its plugins, everywhere


def test_a_priming_failure_is_na_only_for_a_codec_a_build_may_lack():
    def broken(src):
        raise RuntimeError("no decoder for this\nsecond line")

    with pytest.raises(
        decoders.Unavailable, match=r"^x cannot read avif files in this environment: no decoder"
    ):
        decoders.primed("x", "avif", broken, "f.avif")
    for fmt in ("png", "jpeg", "jpeg-progressive"):
        with pytest.raises(RuntimeError):
            decoders.primed("x", fmt, broken, "f")


def test_a_jpeg_reader_reads_the_variants_and_nothing_reads_an_unknown_codec():
    assert all(decoders.get("simplejpeg", v) for v in materialize.JPEG_VARIANTS)
    jpeg = {f for f in materialize.FORMATS if decoders.codec(f) == "jpeg"}
    assert jpeg == {"jpeg", *materialize.JPEG_VARIANTS}
    with pytest.raises(decoders.Unavailable, match="cv2 does not read heic files"):
        decoders.get("cv2", "heic")
    with pytest.raises(decoders.Unavailable, match="pyspng does not read webp files"):
        decoders.get("pyspng", "webp")


def test_index_records_each_format_s_encoder_settings_sizes_and_versions(tiny_formats):
    index = datasets.load_index(tiny_formats)
    for fmt in ALL_FORMATS:
        assert index["encoding"][fmt] == materialize.ENCODING[fmt]
        sizes = [p.stat().st_size for p in sorted((tiny_formats / fmt).iterdir())]
        assert index["formats"][fmt]["sizes"] == sizes
        assert index["formats"][fmt]["suffix"] == materialize.SUFFIX[fmt]
    versions = index["encoding"]["versions"]
    for library in ("pillow", "libjpeg_turbo", "libwebp", "libavif", "libjxl", "libheif"):
        assert versions[library], library
    # each variant is one setting away from the baseline
    base = materialize.ENCODING["jpeg"]
    for variant in materialize.JPEG_VARIANTS:
        changed = {k for k, v in materialize.ENCODING[variant].items() if base.get(k) != v}
        assert len(changed) == 1, (variant, changed)
    # and each file is what its settings make: a progressive JPEG has a progressive frame (SOF2)
    with open(datasets.sample_files(tiny_formats, "jpeg-progressive")[0], "rb") as f:
        assert b"\xff\xc2" in f.read()


def test_a_stack_that_cannot_write_a_format_says_so_and_writes_nothing(
    monkeypatch, tmp_path, manifests
):
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # `import pillow_heif` fails
    data = tmp_path / "data"
    with pytest.raises(datasets.DatasetError) as e:
        datasets.prepare(manifests["formats"], data)
    said = str(e.value)
    assert "\n" not in said and "tiny-formats" in said and "heic" in said
    assert "pillow-heif" in said and "make data" in said
    assert not data.exists() or not any(p.name == "tiny-formats" for p in data.iterdir())


def test_the_sample_record_is_na_for_a_set_this_stack_cannot_write(
    monkeypatch, tmp_path, manifests, tiny, tiny_large
):
    """Sample's setup_cache (suite.prepare_roles): the small and large sets as always, a
    bench_formats set that cannot be written here n/a with a line saying why, the others kept."""
    from benchmarks.bench_sample import Sample

    cannot = tmp_path / "tiny-formats-here.toml"
    cannot.write_text(TINY_FORMATS.replace('"tiny-formats"', '"tiny-formats-here"'))
    monkeypatch.setenv("IMGLOAD_DATA_DIR", str(tiny.parent))
    for role, path in manifests.items():
        monkeypatch.setenv(suite.ROLES[role][0], str(cannot if role == "formats" else path))
    monkeypatch.setitem(sys.modules, "pillow_heif", None)
    roots = Sample().setup_cache()
    assert roots["formats"] is None
    assert roots["small"] == str(tiny) and roots["large"] == str(tiny_large)
    assert math.isnan(Sample().track_images_per_call(roots, "NewFormats"))
    assert math.isnan(Sample().track_pixels_per_image(roots, "JpegVariants"))
    assert Sample().track_images_per_call(roots, "MediumCodecs") == 2
    assert Sample().track_pixels_per_image(roots, "CameraCodecs") == 120 * 160


def test_the_classes_time_only_decoders_that_read_their_formats():
    from benchmarks import bench_formats

    for cls in (
        bench_formats.JpegVariants,
        bench_formats.NewFormats,
        bench_formats.MediumCodecs,
        bench_formats.CameraCodecs,
    ):
        names, formats = cls.params
        assert suite.LOADS[cls.__name__][1] == "sample"
        for name in names:
            assert any(decoders.codec(f) in decoders.LOADERS[name][0] for f in formats), name
        left_out = set(decoders.ALL_IMAGE_DECODERS) - set(names)
        for name in left_out:
            assert not any(decoders.codec(f) in decoders.LOADERS[name][0] for f in formats)


@pytest.mark.asv
def test_asv_runs_every_formats_benchmark_or_shows_na_by_design(tmp_path, manifests):
    """A real `asv run --quick` of bench_formats in .venv's own environment on the tiny sets:
    every combination measured, or n/a where the decoder cannot read the format here."""
    rows = asv_quick_in_venv(tmp_path, manifests, "imgload-formats", r"^bench_formats\.")
    assert set(rows) == {
        f"bench_formats.{c}.time_decode"
        for c in ("JpegVariants", "NewFormats", "MediumCodecs", "CameraCodecs")
    }
    for name, row in rows.items():
        combos = [tuple(v.strip("'") for v in c) for c in itertools.product(*row["params"])]
        assert len(combos) == len(row["result"])
        for combo, value in zip(combos, row["result"]):
            assert value is not None, f"{name} {combo} failed"
            assert math.isnan(value) == formats_na_by_design(*combo), f"{name} {combo}: {value}"
            assert math.isnan(value) or value > 0


def test_the_report_shows_formats_and_sizes_at_a_glance_and_draws_rate_against_size(tmp_path):
    """Hand-made results of one stack: the table at a glance has a row per decoder and format of
    each bench_formats class, per image and in MP/s from what bench_sample recorded, and the
    report draws the decode rate against the image size."""
    from imgload import report

    from .helpers import md_tables, one_stack_results

    two = [["'cv2'", "'pil'"]]
    grid = {  # benchmark -> (param names, params, seconds per call for cv2 then pil)
        "bench_codecs.LargeCodecs.time_decode": (
            ["decoder", "format", "source"],
            [*two, ["'jpeg'"], ["'file'"]],
            [0.010, 0.012],
        ),
        "bench_formats.JpegVariants.time_decode": (
            ["decoder", "format"],
            [*two, ["'jpeg-q75'"]],
            [0.006, 0.007],
        ),
        "bench_formats.NewFormats.time_decode": (
            ["decoder", "format"],
            [*two, ["'avif'"]],
            [0.08, 0.04],
        ),
        "bench_formats.MediumCodecs.time_decode": (
            ["decoder", "format"],
            [*two, ["'jpeg'"]],
            [0.032, 0.036],
        ),
        "bench_formats.CameraCodecs.time_decode": (
            ["decoder", "format"],
            [*two, ["'jpeg'"]],
            [0.12, 0.24],
        ),
    }
    groups = [
        "'LargeCodecs'",
        "'JpegVariants'",
        "'NewFormats'",
        "'MediumCodecs'",
        "'CameraCodecs'",
    ]
    counts = {
        "bench_sample.Sample.track_images_per_call": [8, 8, 8, 8, 2],
        "bench_sample.Sample.track_pixels_per_image": [187500, 187500, 187500, 786432, 12000000],
    }
    rows = dict(grid)
    rows.update({key: (["benchmark"], [groups], values) for key, values in counts.items()})
    folder = one_stack_results(tmp_path, "s", rows)
    out = tmp_path / "out"
    text = report.render(folder, out).read_text()
    glance = md_tables(text[text.index("### Decoders at a glance") :])[0]
    cells = {tuple(r[:3]): r[3] for r in glance[1:]}
    assert cells[("JpegVariants", "cv2", "jpeg-q75")] == "750μs (250.0 MP/s)"
    assert cells[("NewFormats", "pil", "avif")] == "5.00ms (37.5 MP/s)"
    assert cells[("CameraCodecs", "cv2", "jpeg")] == "60.0ms (200.0 MP/s)"
    assert cells[("MediumCodecs", "pil", "jpeg")] == "4.50ms (174.8 MP/s)"
    assert (out / "box-sizes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](box-sizes.png)" in text
