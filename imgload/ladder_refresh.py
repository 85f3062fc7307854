"""Rewrite a ladder's `versions` and `[released]` from the package index (a maintenance helper).

One request for the index's JSON project page (PEP 691, with PEP 700 upload times) gives
every file of the library: a version joins the ladder when it is a final release with a
non-yanked wheel this interpreter can install (the same tags pip accepts), and its
release date is the first upload of any of its files. Only those two entries of the
TOML are rewritten; the base pins, overrides and comments stay as written.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

from packaging.tags import sys_tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from . import files
from . import ladder as ladders
from .files import write_atomic

ACCEPT = "application/vnd.pypi.simple.v1+json"


def pip_index() -> str:
    """The index pip itself installs from: $PIP_INDEX_URL, pip's configured index-url,
    else pip's built-in default."""
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"]
    configured = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.index-url"],
        capture_output=True,
        text=True,
    )
    if configured.returncode == 0 and configured.stdout.strip():
        return configured.stdout.strip()
    from pip._internal.models.index import PyPI  # pip's default; no public API names it

    return PyPI.simple_url


def fetch_project(index_url: str, library: str, timeout: float = 60) -> dict:
    url = f"{index_url.rstrip('/')}/{ladders.canonical(library)}/"
    request = urllib.request.Request(url, headers={"Accept": ACCEPT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except (OSError, ValueError) as e:
        raise ladders.LadderError(f"cannot read {url} as a JSON simple index page: {e}") from None


def releases(project: dict, tags=None) -> dict[Version, datetime.date]:
    """Final releases with an installable, non-yanked wheel -> date of their first upload."""
    tags = set(tags if tags is not None else sys_tags())
    first_upload: dict[Version, datetime.date] = {}
    installable: set[Version] = set()
    for f in project.get("files", []):
        name = f.get("filename", "")
        try:
            version = parse_wheel_filename(name)[1] if name.endswith(".whl") else None
        except (InvalidWheelFilename, InvalidVersion):
            continue
        if version is None:  # sdists still date a release
            m = re.fullmatch(r".+?-([0-9][^-]*)\.(?:tar\.gz|zip)", name)
            try:
                version = Version(m.group(1)) if m else None
            except InvalidVersion:
                version = None
        if version is None or version.is_prerelease or version.is_devrelease:
            continue
        if not f.get("upload-time"):
            raise ladders.LadderError(
                f"the index gives no upload-time for {name} (PEP 700 is needed for release dates)"
            )
        day = datetime.date.fromisoformat(f["upload-time"][:10])
        first_upload[version] = min(day, first_upload.get(version, day))
        if name.endswith(".whl") and not f.get("yanked") and parse_wheel_filename(name)[3] & tags:
            installable.add(version)
    return {v: first_upload[v] for v in sorted(installable)}


def render(versions: list[str], dates: dict[str, datetime.date]) -> tuple[str, str]:
    rows, row = [], []
    for v in versions:
        row.append(f'"{v}"')
        if len(row) == 8:
            rows.append(", ".join(row))
            row = []
    if row:
        rows.append(", ".join(row))
    block = "versions = [\n" + "".join(f"    {r},\n" for r in rows) + "]\n"
    released = "[released]  # first upload to the package index\n" + "".join(
        f'"{v}" = {dates[v].isoformat()}\n' for v in versions
    )
    return block, released


def refresh(
    name_or_path: str,
    index_url: str | None = None,
    since: str | None = None,
    project: dict | None = None,
    tags=None,
) -> Path:
    ladder = ladders.load(name_or_path)
    path = files.toml_path(name_or_path, ladders.LADDERS)
    index_url = index_url or pip_index()
    project = project if project is not None else fetch_project(index_url, ladder.library)
    oldest = Version(since or ladder.rungs[0].version)
    found = {v: d for v, d in releases(project, tags).items() if v >= oldest}
    if not found:
        raise ladders.LadderError(
            f"the index lists no installable final release of {ladder.library} from {oldest} on"
        )
    versions = [str(v) for v in found]
    block, released = render(versions, {str(v): d for v, d in found.items()})
    text = path.read_text()
    text, n = re.subn(r"(?ms)^versions\s*=\s*\[.*?^\]\n", lambda _: block, text, count=1)
    if n != 1:
        raise ladders.LadderError(f"{path}: no multi-line `versions = [` ... `]` list to rewrite")
    # the header, then only its `"version" = date` lines and blank lines: comments that
    # introduce the next table stay where they are
    text, n = re.subn(
        r'(?m)^\[released\][^\n]*\n(?:[ \t]*(?:"[^"\n]*"[ \t]*=[ \t]*[0-9-]+[ \t]*)?\n)*',
        lambda _: released + "\n",
        text,
        count=1,
    )
    if n != 1:
        text = text.rstrip("\n") + "\n\n" + released
    write_atomic(
        path, text.rstrip("\n") + "\n", check=ladders.load
    )  # never replace a good ladder with one that does not load
    return path
