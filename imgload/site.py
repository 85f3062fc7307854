"""Make asv's published site self-contained: its third-party scripts served from the site itself.

asv's index.html loads jQuery, flot, Bootstrap and friends from public CDNs, so the site
shows nothing on a machine without internet access (a lab, CI, an intranet). `make
publish` installs the same libraries from npm (site/package-lock.json pins them, with
hashes), copies them into <html>/vendor/ and points the page at those copies. Integrity
attributes are kept where our copy is byte-identical to the CDN file and recomputed
where it is not (cdnjs serves its own minified flot builds). A CDN address this module
does not know about is an error, so an asv upgrade cannot quietly bring the network back.

With a results folder (`make publish` gives .asv/results) it also adds the question a stacks
suite is opened for, which asv's own pages answer poorly at one commit (empty grid thumbnails,
graphs under a long legend): <html>/compare/index.html, the report's tables and plots
(imgload/report.py, the same code as `imgload report`) as a page styled inline, linked from
asv's navbar and from the top of its front page. When the results cannot be read the page
says what is missing and the command still ends in one UserError line.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import shutil
from pathlib import Path

from .errors import UserError
from .files import REPO, remove_stale, replacing, write_atomic
from .report import render, to_html
from .results import ResultsError

NODE_MODULES = REPO / "site" / "node_modules"

# CDN address in asv's index.html -> file in site/node_modules (vendor/ keeps these paths)
VENDORED = {
    "https://code.jquery.com/jquery-3.3.1.min.js": "jquery/dist/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.min.js": "flot/jquery.flot.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.time.min.js": (
        "flot/jquery.flot.time.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.selection.min.js": (
        "flot/jquery.flot.selection.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.categories.min.js": (
        "flot/jquery.flot.categories.js"
    ),
    "https://cdn.jsdelivr.net/npm/flot-orderbars@1.0.0/js/jquery.flot.orderBars.js": (
        "flot-orderbars/js/jquery.flot.orderBars.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/stupidtable/1.0.1/stupidtable.min.js": (
        "stupid-table-plugin/stupidtable.min.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/blueimp-md5/2.19.0/js/md5.min.js": (
        "blueimp-md5/js/md5.min.js"
    ),
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/js/bootstrap.min.js": (
        "bootstrap/dist/js/bootstrap.min.js"
    ),
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css": (
        "bootstrap/dist/css/bootstrap.min.css"
    ),
}
# files a vendored file loads itself (Bootstrap's CSS: ../fonts/)
ALSO = ("bootstrap/dist/fonts",)
# what the browser fetches by itself: scripts and stylesheets
# (plain <a href> links are not fetched)
TAG = re.compile(
    r'<(?P<tag>script|link)\b(?P<pre>[^>]*?)\s(?P<attr>src|href)="(?P<url>https?://[^"]+)"(?P<rest>[^>]*)>'
)


class SiteError(UserError):
    """A one-line reason the published site cannot be made self-contained."""


def _integrity(data: bytes, algorithm: str) -> str:
    return f"{algorithm}-" + base64.b64encode(hashlib.new(algorithm, data).digest()).decode()


def _retag(match: re.Match, html_dir: Path, modules: Path, report: list[str]) -> str:
    url = match["url"]
    if url not in VENDORED:
        raise SiteError(
            f"the site loads {url}, which is not vendored: add it to site/package.json and"
            " imgload/site.py"
        )
    source = modules / VENDORED[url]
    if not source.is_file():
        raise SiteError(f"{source}: missing; run: npm ci --prefix site (make publish does)")
    target = html_dir / "vendor" / VENDORED[url]
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    data, rest = source.read_bytes(), match["rest"]
    wanted = re.search(r'integrity="(sha\d+)-([^"]+)"', rest)
    if wanted:
        mine = _integrity(data, wanted[1])
        same = mine == f"{wanted[1]}-{wanted[2]}"
        report.append(
            f"{VENDORED[url]}: {'identical to' if same else 'a different build than'} the CDN file"
        )
        rest = rest.replace(wanted[0], f'integrity="{mine}"')
    rest = re.sub(r'\s(crossorigin|referrerpolicy)="[^"]*"', "", rest)
    return f'<{match["tag"]}{match["pre"]} {match["attr"]}="vendor/{VENDORED[url]}"{rest}>'


def vendor(html_dir: str | Path, modules: str | Path = NODE_MODULES) -> list[str]:
    """Point every page of the published site at local copies; one line per file vendored."""
    html_dir, modules = Path(html_dir), Path(modules)
    pages = sorted(
        p for p in html_dir.glob("*.html") if not p.name.startswith(".")
    )  # not a scratch copy
    if not (html_dir / "index.html").is_file():
        raise SiteError(f"{html_dir}: no index.html; run asv publish first (make publish)")
    report: list[str] = []
    for page in pages:
        text = page.read_text()
        new = TAG.sub(lambda m: _retag(m, html_dir, modules, report), text)
        if new != text:
            write_atomic(page, new)
    for folder in ALSO:
        if (modules / folder).is_dir():
            shutil.copytree(modules / folder, html_dir / "vendor" / folder, dirs_exist_ok=True)
    return report


# ------------------------------------------------------------------ the stacks, compared

COMPARE = "compare"  # <html>/compare/: index.html, report.md and the report's PNG plots
PAGE = f"{COMPARE}/index.html"
# what is added to asv's index.html, between markers so that a second run replaces it
MARK, END = "<!-- imgload: compare -->", "<!-- /imgload: compare -->"
ADDED = re.compile(re.escape(MARK) + ".*?" + re.escape(END), re.S)
# where it goes: after asv's last navbar entry, and first in the front page's grid (asv's
# summarygrid.js appends the benchmark groups to that div, so what is first stays first)
NAV_LAST = re.compile(r'<li id="nav-li-regressions">.*?</li>', re.S)
GRID_OPEN = re.compile(r'<div id="summarygrid-display"[^>]*>')
NAV_ITEM = f'<li id="nav-li-compare"><a href="{PAGE}">Stacks compared</a></li>'
BANNER = (
    '<div id="imgload-compare" class="alert alert-info" style="margin: 12px 20px 0">'
    f'<strong><a href="{PAGE}" class="alert-link">Library stacks compared</a></strong>:'
    " every stack side by side at one commit, the report's tables and plots. The grid below"
    " plots each benchmark against commits.</div>"
)


def link(index_html: str) -> str:
    """asv's index.html with the comparison page in its navbar and at the top of its front
    page. asv's markup is matched exactly: if an asv upgrade changed it, this says so rather
    than publishing a site with no way to the page."""
    text = ADDED.sub("", index_html)
    for name, pattern in (("navbar entry", NAV_LAST), ("front page", GRID_OPEN)):
        if len(pattern.findall(text)) != 1:
            raise SiteError(
                f"index.html: asv's {name} ({pattern.pattern}) is not there once; asv's page"
                " changed: update imgload/site.py"
            )
    text = NAV_LAST.sub(lambda m: f"{m[0]}{MARK}{NAV_ITEM}{END}", text)
    return GRID_OPEN.sub(lambda m: f"{m[0]}{MARK}{BANNER}{END}", text)


STYLE = """
body { margin: 0; font: 14px/1.45 "Helvetica Neue", Helvetica, Arial, sans-serif; color: #333; }
nav.top { position: fixed; top: 0; left: 0; right: 0; height: 50px; z-index: 2;
  background: #f8f8f8; border-bottom: 1px solid #e7e7e7; }
nav.top a { float: left; padding: 15px; color: #777; text-decoration: none; }
nav.top a:hover { color: #333; }
nav.top a.active { background: #e7e7e7; color: #555; }
nav.toc { position: fixed; top: 51px; bottom: 0; left: 0; width: 220px; overflow-y: auto;
  padding: 8px 12px; box-sizing: border-box; border-right: 1px solid #e7e7e7; font-size: 12px; }
nav.toc a { display: block; padding: 2px 0; color: #337ab7; text-decoration: none;
  overflow-wrap: anywhere; }
nav.toc a.h2 { font-weight: bold; margin-top: 8px; }
main { margin: 50px 0 0 220px; padding: 4px 24px 40px; }
h1 { font-size: 26px; } h2 { font-size: 22px; margin-top: 32px; }
h3 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #eee; }
h2, h3 { scroll-margin-top: 60px; }
table { border-collapse: collapse; margin: 6px 0 14px; font-size: 12.5px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
thead th { background: #f5f5f5; position: sticky; top: 50px; }
tbody tr:nth-child(odd) { background: #fafafa; }
td strong { color: #000; }
code { font-size: 90%; background: #f7f7f9; padding: 1px 3px; border-radius: 3px; }
figure { margin: 12px 0 24px; } figcaption { color: #777; font-size: 12px; }
img { max-width: 100%; height: auto; }
blockquote.banner, .missing { border: 1px solid #faebcc; background: #fcf8e3; color: #8a6d3b;
  padding: 8px 16px; margin: 12px 0; }
"""


def _contents(body: str) -> str:
    """A table of contents from the body's h2 and h3 headings (to_html gives each an id); a
    benchmark's dotted name may wrap after a dot, so the narrow column stays readable."""
    found = re.findall(r'<(h[23]) id="([^"]+)">(.*?)</h[23]>', body)
    return "".join(
        f'<a class="{h}" href="#{anchor}">{re.sub(r"[.](?=[A-Za-z_])", ".<wbr>", title)}</a>'
        for h, anchor, title in found
    )


# the comparison page's navbar: asv's pages, then this one
NAVBAR = (
    ("../index.html#/", "Benchmark grid"),
    ("../index.html#/summarylist", "Benchmark list"),
    ("../index.html#/regressions", "Regressions"),
    ("index.html", "Stacks compared"),
)


def page(body: str) -> str:
    """The comparison page around `body`: asv's navigation back to its pages, a table of
    contents, and inline styles only, so it loads nothing beyond its own plots."""
    active = ' class="active"'
    nav = "".join(
        f'<a href="{href}"{active if href == "index.html" else ""}>{label}</a>'
        for href, label in NAVBAR
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Library stacks compared</title>
<style>{STYLE}</style>
</head>
<body>
<nav class="top">{nav}</nav>
<nav class="toc">{_contents(body)}<a href="report.md">as Markdown (report.md)</a></nav>
<main>
{body}
</main>
</body>
</html>
"""


def _missing(problems: list[str]) -> str:
    """The page's body when there is nothing to compare: what is missing, and why."""
    items = "".join(f"<li>{html.escape(p)}</li>" for p in problems)
    return (
        "<h1>Library stacks compared</h1>\n"
        f'<div class="missing"><strong>Nothing to compare</strong>:<ul>{items}</ul></div>'
    )


def _report(
    results_dir: Path, out_dir: Path, envinfo_dir: Path | None
) -> tuple[Path | None, list[str]]:
    """report.md and its plots in out_dir, and what is wrong with the results, the reason a
    strict report stops first. A results file that cannot be read is left out (the report
    names it in a banner); when nothing can be read there is no report, only the reasons."""
    try:
        return render(results_dir, out_dir, envinfo_dir), []
    except ResultsError as strict:
        try:
            return render(results_dir, out_dir, envinfo_dir, partial=True), [str(strict)]
        except ResultsError as e:
            return None, list(dict.fromkeys([str(strict), str(e)]))


def compare(
    html_dir: str | Path, results_dir: str | Path, envinfo_dir: str | Path | None = None
) -> Path:
    """Write <html_dir>/compare/ (index.html, report.md, the plots) from the asv results and
    link it from index.html; returns the page's path. The page appears whole or not at all. A
    problem with the results is raised as a SiteError only once the page says what is missing
    and the rest of the site is in place: `make publish` still publishes, and still fails."""
    html_dir = Path(html_dir)
    index = html_dir / "index.html"
    if not index.is_file():
        raise SiteError(f"{html_dir}: no index.html; run asv publish first (make publish)")
    linked = link(index.read_text())  # before anything is written: asv's markup is as expected
    target = html_dir / COMPARE
    remove_stale(html_dir, COMPARE)  # what a killed publish left beside it
    with replacing(target) as scratch:
        scratch.mkdir()
        md, problems = _report(
            Path(results_dir), scratch, Path(envinfo_dir) if envinfo_dir else None
        )
        body = to_html(md.read_text()) if md else _missing(problems)
        (scratch / "index.html").write_text(page(body))
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)  # os.replace puts a folder only over an empty one
        elif target.exists() or target.is_symlink():
            target.unlink()
    write_atomic(index, linked)
    if problems:
        raise SiteError(
            f"{problems[0]} (published anyway: {target / 'index.html'} says what is missing)"
        )
    return target / "index.html"
