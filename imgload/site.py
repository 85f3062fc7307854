"""Make asv's published site self-contained: its third-party scripts served from the site itself.

asv's index.html loads jQuery, flot, Bootstrap and friends from public CDNs, so the site
shows nothing on a machine without internet access (a lab, CI, an intranet). `make
publish` installs the same libraries from npm (site/package-lock.json pins them, with
hashes), copies them into <html>/vendor/ and points the page at those copies. Integrity
attributes are kept where our copy is byte-identical to the CDN file and recomputed
where it is not (cdnjs serves its own minified flot builds). A CDN address this module
does not know about is an error, so an asv upgrade cannot quietly bring the network back.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
from pathlib import Path

from .errors import UserError
from .files import REPO, write_atomic

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
