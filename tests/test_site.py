"""The published asv site, rendered by a real browser (headless Chromium) from 127.0.0.1."""

import json
import os
import re
import shutil
import subprocess
import sys
import warnings

import pytest

from .helpers import REPO, serve_folder

pytestmark = pytest.mark.asv
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--virtual-time-budget=15000",
    "--window-size=1280,900",
]


def _find_chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)


def _skip_loudly(reason: str):
    message = f"CHROMIUM NOT AVAILABLE, THE PUBLISHED SITE WAS NOT CHECKED IN A BROWSER: {reason}"
    warnings.warn(message, stacklevel=2)
    print(f"\n{'!' * 80}\n{message}\n{'!' * 80}", flush=True)
    pytest.skip(message)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed with apt-get when missing (as CI runs on a clean machine)."""
    found = _find_chromium()
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        _skip_loudly(
            "chromium is not installed and apt-get cannot install it here (needs root and apt-get)"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
    ):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            _skip_loudly(
                f"`{' '.join(cmd)}` failed:"
                f" {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}"
            )
    return _find_chromium() or _skip_loudly(
        "apt-get installed chromium but no chromium binary is on PATH"
    )


@pytest.fixture(scope="session")
def node_modules():
    """The site's vendored scripts (site/package-lock.json), installed as `make publish` does."""
    from imgload.site import NODE_MODULES

    if not (NODE_MODULES / ".package-lock.json").is_file():
        if not shutil.which("npm"):
            _skip_loudly("site/node_modules is missing and npm is not installed to fetch it")
        proc = subprocess.run(
            [
                "npm",
                "ci",
                "--prefix",
                str(REPO / "site"),
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
    return NODE_MODULES


@pytest.fixture(scope="module")
def site(two_stack_run, node_modules):
    """The real two-stack run published as `make publish` does (asv publish, then vendored
    scripts), served on 127.0.0.1 by a thread of this process."""
    tmp, asv = two_stack_run["tmp"], two_stack_run["asv"]
    pub = subprocess.run(
        [*asv, "publish", "--config", str(two_stack_run["config"])],
        env=two_stack_run["env"],
        capture_output=True,
        text=True,
    )
    assert pub.returncode == 0, pub.stdout + pub.stderr
    vend = subprocess.run(
        [
            sys.executable,
            "-m",
            "imgload",
            "site",
            "--html",
            str(tmp / "html"),
            "--node-modules",
            str(node_modules),
        ],
        capture_output=True,
        text=True,
    )
    assert vend.returncode == 0, vend.stderr
    assert "http" not in "".join(
        re.findall(r"<(?:script|link)[^>]*>", (tmp / "html" / "index.html").read_text())
    )
    with serve_folder(tmp / "html") as server:
        yield server.base, tmp / "html"


def _browse(chromium, tmp_path, url, *args) -> str:
    profile = (
        tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    )  # a fresh user-data-dir per page
    proc = subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={profile}", *args, url],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_site_lists_the_suite_and_draws_a_graph(chromium, site, tmp_path):
    url, html = site
    benchmarks = [b for b in json.loads((html / "index.json").read_text())["benchmarks"]]
    assert "bench_decode.SmallImages.time_decode" in benchmarks
    dom = _browse(chromium, tmp_path, f"{url}/index.html", "--dump-dom")
    for name in benchmarks:  # the summary grid lists every benchmark of the suite
        assert f'href="#{name}"' in dom, name

    graph = "bench_decode.SmallImages.time_decode"
    # one commit: decoders along x show the values; the run measured jpeg only
    page = f"{url}/index.html#{graph}?x-axis=decoder&p-format=%27jpeg%27"
    dom = _browse(chromium, tmp_path, page, "--dump-dom")
    plot = dom[dom.index('id="main-graph"') :]
    plot = plot[: plot.index('id="overview"')] if 'id="overview"' in plot else plot[:20000]
    assert '<canvas class="flot-base"' in plot, "flot drew no plot"
    ticks = re.findall(r'class="flot-tick-label tickLabel"[^>]*>([^<]*)<', plot)
    assert {"cv2", "simplejpeg"} <= set(ticks), (
        ticks
    )  # the x axis carries the decoders the run measured

    shot = REPO / ".asv" / "site-check.png"
    shot.parent.mkdir(exist_ok=True)
    shot.unlink(missing_ok=True)
    _browse(chromium, tmp_path, page, f"--screenshot={shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_vendoring_refuses_a_cdn_it_does_not_know(tmp_path):
    from imgload import site

    (tmp_path / "index.html").write_text(
        '<script src="https://cdn.example.org/x.js"></script><a href="https://asv.example/">asv</a>'
    )
    with pytest.raises(
        site.SiteError, match="https://cdn.example.org/x.js, which is not vendored"
    ):
        site.vendor(tmp_path)
    (tmp_path / "index.html").write_text(f'<script src="{next(iter(site.VENDORED))}"></script>')
    with pytest.raises(site.SiteError, match="missing; run: npm ci --prefix site"):
        site.vendor(tmp_path, tmp_path / "no-node-modules")
    with pytest.raises(site.SiteError, match="no index.html"):
        site.vendor(tmp_path / "nothing")
