"""The published asv site, rendered by a real browser (headless Chromium) from 127.0.0.1."""

import html
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
import warnings
from pathlib import Path
from typing import NamedTuple

import pytest

from .helpers import REPO, md_tables, serve_folder

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
def site(two_stack_run, node_modules, tmp_path_factory):
    """The real two-stack run published as `make publish` does (asv publish, then vendored
    scripts and the stacks compared), served on 127.0.0.1 by a thread of this process: the
    site at <base>/site/, beside it the test's own probe pages (same origin, not in the site)."""
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
            "--results",
            str(tmp / "results"),
        ],
        capture_output=True,
        text=True,
    )
    assert vend.returncode == 0, vend.stderr
    assert f"stacks compared in {tmp / 'html' / 'compare' / 'index.html'}" in vend.stdout
    assert "http" not in "".join(
        re.findall(r"<(?:script|link)[^>]*>", (tmp / "html" / "index.html").read_text())
    )
    root = tmp_path_factory.mktemp("served")
    (root / "site").symlink_to(tmp / "html")
    with serve_folder(root) as server:
        yield Site(f"{server.base}/site", tmp / "html", root, server.base)


class Site(NamedTuple):
    url: str  # the published site's address
    html: Path  # its folder
    root: Path  # the served folder: the site as site/, and probe pages
    origin: str  # http://127.0.0.1:<port>


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
    url, html = site.url, site.html
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


# ------------------------------------------------------------------ the stacks compared

# A page of the test's own, beside the site on the same server: it opens a page of the site in
# an iframe of a real window's size and, once `ready` holds, writes what `probe` found as JSON
# into #probe, which --dump-dom prints (a page's DOM alone says nothing of images decoded or of
# where things are drawn).
PROBE = """<!doctype html>
<meta charset="utf-8">
<iframe id="page" src="SRC" style="width: 1280px; height: 900px; border: 0"></iframe>
<pre id="probe"></pre>
<script>
const frame = document.getElementById("page");
function report(tries) {
  const doc = frame.contentDocument;
  if (!(READY)(doc) && tries < 150) { setTimeout(() => report(tries + 1), 100); return; }
  document.getElementById("probe").textContent = JSON.stringify((PROBE)(doc));
}
frame.addEventListener("load", () => report(0));
</script>
"""

COMPARE_PROBE = """doc => {
  const heading = el => {
    while ((el = el.previousElementSibling)) {
      if (/^H[1-3]$/.test(el.tagName)) return el.textContent;
    }
    return null;
  };
  return {
    tables: [...doc.querySelectorAll("main table")].map(t => ({
      heading: heading(t),
      height: t.getBoundingClientRect().height,
      rows: [...t.rows].map(r => [...r.cells].map(c => c.textContent)),
    })),
    images: [...doc.images].map(i => ({
      src: i.getAttribute("src"), complete: i.complete, width: i.naturalWidth,
    })),
    nav: [...doc.querySelectorAll("nav.top a")].map(a => a.getAttribute("href")),
  };
}"""

FRONT_PROBE = """doc => {
  const box = el => {
    if (!el) return null;
    const r = el.getBoundingClientRect();
    return {top: r.top, height: r.height, text: el.textContent.trim()};
  };
  const link = 'a[href="compare/index.html"]';
  return {
    nav: box(doc.querySelector("#nav " + link)),
    banner: box(doc.querySelector("#summarygrid-display " + link)),
    grid: box(doc.querySelector("#summarygrid-display .benchmark-group")),
    groups: doc.querySelectorAll("#summarygrid-display .benchmark-group").length,
  };
}"""


def _requests(netlog: Path, origin: str) -> list[str]:
    """Every URL a page from `origin` asked for, from Chromium's net log (the browser's own
    background traffic, which no page starts, is left out: its initiator is no origin)."""
    log = json.loads(netlog.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        e["params"]["url"]
        for e in log["events"]
        if e["type"] == start and e.get("params", {}).get("initiator") == origin
    ]


def _probe(chromium, tmp_path, site, page: str, probe: str, ready: str = "doc => true"):
    """What `probe` (a JS function of the document) found in `page` (a path in the site), and
    every request the page made."""
    harness = site.root / f"probe-{tmp_path.name}.html"
    harness.write_text(
        PROBE.replace("SRC", f"site/{page}").replace("READY", ready).replace("PROBE", probe)
    )
    netlog = tmp_path / "net.json"
    dom = _browse(
        chromium,
        tmp_path,
        f"{site.origin}/{harness.name}",
        "--dump-dom",
        f"--log-net-log={netlog}",
        "--net-log-capture-mode=Default",
    )
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found and found[1], dom[-2000:]
    return json.loads(html.unescape(found[1])), _requests(netlog, site.origin)


def test_comparison_page_shows_the_reports_tables_and_plots_from_127_0_0_1_only(
    chromium, site, two_stack_run, tmp_path
):
    got, requests = _probe(chromium, tmp_path, site, "compare/index.html", COMPARE_PROBE)
    # every table of the report, every row and cell, each drawn
    report_md = (site.html / "compare" / "report.md").read_text()
    assert [t["rows"] for t in got["tables"]] == md_tables(report_md)
    assert len(got["tables"]) >= 5 and all(t["height"] > 0 for t in got["tables"])
    # the table the page is opened for: the run measured cv2 and simplejpeg on jpeg, and the
    # oldest stack has no simplejpeg
    glance = next(t for t in got["tables"] if t["heading"].startswith("Decoders at a glance"))
    header, *rows = glance["rows"]
    stacks = [s["env"]["IMGLOAD_STACK"] for s in two_stack_run["stacks"]]
    assert header == ["images", "decoder", "format", *stacks]
    cells = {tuple(r[:3]): r[3:] for r in rows}
    cv2, simplejpeg = ("SmallImages", "cv2", "jpeg"), ("SmallImages", "simplejpeg", "jpeg")
    assert set(cells) == {cv2, simplejpeg}
    assert cells[simplejpeg][0] == "n/a"
    assert all("MP/s" in c for c in cells[cv2] + cells[simplejpeg][1:]), cells
    # the plots, decoded; and nothing fetched from anywhere but this server
    plots = {"imgload-a-decoders.png", "imgload-a-threads.png", "imgload-a-cold-warm.png"}
    assert {i["src"] for i in got["images"]} == plots
    assert all(i["complete"] and i["width"] > 0 for i in got["images"]), got["images"]
    assert {f"{site.url}/compare/{name}" for name in plots} <= set(requests)
    assert all(url.startswith(f"{site.origin}/") for url in requests), requests
    assert "../index.html#/" in got["nav"]  # back to asv's grid


def test_front_page_links_the_comparison_in_asvs_navbar_and_above_its_grid(
    chromium, site, tmp_path
):
    got, requests = _probe(
        chromium,
        tmp_path,
        site,
        "index.html",
        FRONT_PROBE,
        ready="doc => doc.querySelector('#summarygrid-display .benchmark-group')",
    )
    assert got["nav"] and got["nav"]["text"] == "Stacks compared"
    assert got["nav"]["height"] > 0 and got["nav"]["top"] < 55  # in the fixed navbar
    # the banner: shown, at the top of the front page, above asv's grid, which still fills in
    assert got["banner"] and got["banner"]["height"] > 0 and got["banner"]["top"] < 200
    assert got["grid"] and got["banner"]["top"] < got["grid"]["top"]
    modules = {
        b.split(".")[0] for b in json.loads((site.html / "index.json").read_text())["benchmarks"]
    }
    assert got["groups"] == len(modules)
    assert all(url.startswith(f"{site.origin}/") for url in requests), requests
    with urllib.request.urlopen(f"{site.url}/compare/index.html") as page:  # the link leads there
        assert page.status == 200 and b"Decoders at a glance" in page.read()


def _publish(html_dir: Path, results: Path, node_modules: Path, *extra: str):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "imgload",
            "site",
            "--html",
            str(html_dir),
            "--node-modules",
            str(node_modules),
            "--results",
            str(results),
            *extra,
        ],
        capture_output=True,
        text=True,
    )


def test_unreadable_results_file_is_named_and_the_page_published_without_it(
    site, two_stack_run, node_modules, tmp_path
):
    html_dir, results = tmp_path / "html", tmp_path / "results"
    shutil.copytree(site.html, html_dir)
    shutil.copytree(two_stack_run["tmp"] / "results", results)
    broken = results / "imgload-a" / "ffffffff-env-broken.json"
    broken.write_text("{ not json")
    proc = _publish(
        html_dir, results, node_modules, "--envinfo", str(two_stack_run["tmp"] / "envinfo")
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"imgload: error: {broken}: Expecting property name")
    page = (html_dir / "compare" / "index.html").read_text()
    assert "<strong>Partial report</strong>" in page and f"<code>{broken}: " in page
    assert "Decoders at a glance" in page and page.count('<img src="imgload-a-') == 3
    assert (html_dir / "index.html").read_text().count('id="nav-li-compare"') == 1


def test_missing_results_still_publish_the_site_and_a_page_that_says_so(node_modules, tmp_path):
    import asv

    html_dir, missing = tmp_path / "html", tmp_path / "no-results"
    shutil.copytree(Path(asv.__file__).parent / "www", html_dir)  # what asv publish starts from
    for _ in range(2):  # and again: the page replaced, the links not added twice
        proc = _publish(html_dir, missing, node_modules)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith(f"imgload: error: {missing}: no such results folder")
        index = (html_dir / "index.html").read_text()
        assert index.count('id="nav-li-compare"') == index.count('id="imgload-compare"') == 1
        assert "http" not in "".join(re.findall(r"<(?:script|link)[^>]*>", index))  # vendored
        page = (html_dir / "compare" / "index.html").read_text()
        assert "Nothing to compare" in page and f"{missing}: no such results folder" in page
        assert not list(html_dir.glob(".compare.partial-*"))


def test_links_are_added_once_and_changed_asv_markup_is_refused(tmp_path):
    import asv

    from imgload import site

    text = (Path(asv.__file__).parent / "www" / "index.html").read_text()
    once = site.link(text)
    assert site.link(once) == once and site.ADDED.sub("", once) == text
    assert once.count(site.NAV_ITEM) == once.count(site.BANNER) == 1
    html_dir = tmp_path / "html"
    html_dir.mkdir()
    for markup, what in (
        ('<li id="nav-li-regressions"><a href="#/regressions">Regressions</a></li>', "navbar"),
        ('<div id="summarygrid-display"', "front page"),
    ):
        assert markup in text
        changed = text.replace(markup, "<!-- gone -->")
        with pytest.raises(
            site.SiteError, match=f"index.html: asv's {what}.*update imgload/site.py"
        ):
            site.link(changed)
        (html_dir / "index.html").write_text(changed)
        with pytest.raises(site.SiteError, match=what):
            site.compare(html_dir, tmp_path / "results")
        assert not (html_dir / "compare").exists()  # refused before anything is written


GRAPH_PROBE = """doc => {
  const plot = doc.defaultView.$("#main-graph").data("plot");
  return plot.getData().map(s => {
    const ps = s.datapoints.pointsize, points = s.datapoints.points, xy = [];
    for (let i = 0; i < points.length; i += ps) xy.push([points[i], points[i + 1]]);
    return {label: s.label, xy: xy};
  });
}"""


def _graph_ready(series: int) -> str:
    """JS: asv's graph page has drawn `series` series (it loads them one by one)."""
    return (
        'doc => { const $ = doc.defaultView.$; const p = $ && $("#main-graph").data("plot");'
        f" return p && p.getData().length >= {series}; }}"
    )


def test_asv_graph_views_the_readme_links_draw_every_stack(
    chromium, site, two_stack_run, tmp_path
):
    """The README's asv graph addresses, at one commit: a parameter along x for one stack (bars
    for several stacks side by side are not drawn: flot-orderbars computes their offsets from
    the category names, NaN), and every stack's point at the commit with the legend hidden."""
    graph = "index.html#bench_decode.SmallImages.time_decode"
    fixed = "p-format=%27jpeg%27&p-execution=%27sequential%27&p-cache=%27warm%27"
    stacks = [s["env"]["IMGLOAD_STACK"] for s in two_stack_run["stacks"]]
    one_stack = f"{graph}?x-axis=decoder&{fixed}&env-IMGLOAD_STACK={stacks[-1]}"
    got, _ = _probe(chromium, tmp_path, site, one_stack, GRAPH_PROBE, _graph_ready(1))
    assert len(got) == 1
    drawn = [(x, y) for x, y in got[0]["xy"] if x is not None and y]
    assert len(drawn) >= 2, got  # cv2 and simplejpeg, each a bar at its own place along x
    assert len({x for x, _ in drawn}) == len(drawn)

    every_stack = f"{graph}?p-decoder=%27cv2%27&{fixed}&show-legend=false"
    got, _ = _probe(chromium, tmp_path, site, every_stack, GRAPH_PROBE, _graph_ready(2))
    assert len(got) == len(stacks)  # one series per stack, its point at the one commit
    assert all(len(s["xy"]) == 1 and s["xy"][0][0] is not None and s["xy"][0][1] for s in got)
    assert sorted(
        s for s in stacks if any(f"IMGLOAD_STACK-{s}" in g["label"] for g in got)
    ) == sorted(stacks)
