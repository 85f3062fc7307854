"""Release ladders: ladders/<name>.toml -> a git repository asv can bisect, and its asv config.

asv only walks commits, and always runs the benchmark code of the working tree. A ladder
therefore becomes a generated repository with one commit per release of one library,
each holding `requirements.txt`, the exact pins of that rung (the release plus the
ladder's base pins), tagged with the version and dated with its release date:

    <ladder dir>/<name>/repo/           git: a root commit (no release), then one commit per rung
    <ladder dir>/<name>/asv.conf.json   derived from the main asv.conf.json
    <ladder dir>/<name>/rungs.txt       the rung commits, oldest first (asv run HASHFILE:)

Commits carry fixed names and dates, so rebuilding gives the same hashes and stored
results stay attached to their releases. A rebuild writes objects first and then moves
every ref in one transaction, so the repository is never seen half-updated.
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from . import files
from .envcheck import EXACT_VERSION, EnvCheckError, canonical, fetch_requirements
from .errors import UserError
from .files import REPO, write_atomic

LADDERS = REPO / "ladders"
BRANCH = "main"
REQUIREMENTS = "requirements.txt"
IDENTITY = ("imgload ladder", "ladder@imgload.invalid")
RELEASE_HOUR = 12  # commit time of day (UTC) on a release date
_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")


class LadderError(UserError):
    """A one-line, user-facing reason a ladder cannot be read or built."""


@dataclass(frozen=True)
class Rung:
    version: str
    released: datetime.date
    pins: dict[str, str]  # every pin of the rung, the ladder's library included

    def requirements(self, library: str) -> str:
        lines = [
            f"# {library} {self.version}, released {self.released.isoformat()}: one rung of a"
            " release ladder"
        ]
        lines += [
            f"{name}=={self.pins[name]}"
            for name in [library, *sorted(n for n in self.pins if n != library)]
        ]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Ladder:
    name: str
    library: str
    rungs: tuple[Rung, ...]
    find_links: Path | None = (
        None  # install only from this folder (--no-index), e.g. self-built wheels
    )


def ladder_dir(root: str | os.PathLike | None = None) -> Path:
    """Where built ladders live: `root`, else $IMGLOAD_LADDER_DIR,
    else .asv/ladders in the repository."""
    return Path(
        root or os.environ.get("IMGLOAD_LADDER_DIR") or REPO / ".asv" / "ladders"
    ).resolve()


def built_folder(ladder: Ladder, root: str | os.PathLike | None = None) -> Path:
    """The ladder's own folder in the ladder dir, named after its file: a build replaces what is
    in it, so the name must not lead anywhere else (no '..', no leading dot or dash)."""
    if not _NAME.fullmatch(ladder.name):
        raise LadderError(
            f"ladder file name {ladder.name!r}.toml: expected a plain ladder name (letters,"
            " digits, '.', '_', '-', starting with a letter or digit); rename the file"
        )
    return ladder_dir(root) / ladder.name


def _version(text, where: str) -> Version:
    try:
        v = Version(str(text))
    except InvalidVersion:
        raise LadderError(f"{where}: {text!r} is not a version") from None
    return v


def _pins(table, where: str) -> dict[str, str]:
    if not isinstance(table, dict):
        raise LadderError(f'{where} must be a table of package = "exact version"')
    pins = {}
    for name, value in table.items():
        if (
            not _NAME.fullmatch(name)
            or not isinstance(value, str)
            or not EXACT_VERSION.fullmatch(value)
        ):
            raise LadderError(
                f'{where}: {name} = {value!r} is not an exact pin (package = "1.2.3")'
            )
        pins[canonical(name)] = value
    return pins


def load(name_or_path: str | os.PathLike) -> Ladder:
    """Read and check a ladder: a name in ladders/ or a path to a .toml file."""
    text = str(name_or_path)
    path = files.toml_path(text, LADDERS)
    if not path.is_file():
        known = ", ".join(files.known(LADDERS))
        raise LadderError(f"no ladder {text!r} (a .toml path, or one of: {known})")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise LadderError(f"{path}: not valid TOML: {e}") from None
    where = str(path)
    unknown = set(raw) - {"library", "versions", "released", "base", "override", "find_links"}
    if unknown:
        raise LadderError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    library = raw.get("library")
    if not isinstance(library, str) or not _NAME.fullmatch(library):
        raise LadderError(f"{where}: library must be a PyPI name, got {library!r}")
    library = canonical(library)
    versions = raw.get("versions")
    if (
        not isinstance(versions, list)
        or not versions
        or not all(isinstance(v, str) for v in versions)
    ):
        raise LadderError(
            f"{where}: versions must be a non-empty list of quoted versions, oldest first"
        )
    parsed = [_version(v, f"{where}: versions") for v in versions]
    for v, text_v in zip(parsed, versions):
        if v.is_prerelease or v.is_devrelease:
            raise LadderError(f"{where}: versions: {text_v} is not a final release")
    for a, b, ta, tb in zip(parsed, parsed[1:], versions, versions[1:]):
        if not a < b:
            raise LadderError(
                f"{where}: versions must be increasing, oldest first: {ta} comes before {tb}"
            )
    released = raw.get("released", {})
    if not isinstance(released, dict):
        raise LadderError(f'{where}: released must be a table of "version" = release date')
    for v in versions:
        if not isinstance(released.get(v), datetime.date) or isinstance(
            released.get(v), datetime.datetime
        ):
            raise LadderError(
                f'{where}: released."{v}" must be the release date (e.g. 2024-07-01)'
            )
    extra = set(released) - set(versions)
    if extra:
        raise LadderError(
            f"{where}: released lists versions not in versions: {', '.join(sorted(extra))}"
        )
    base = _pins(raw.get("base", {}), f"{where}: [base]")
    if library in base:
        raise LadderError(f"{where}: [base] must not pin the ladder's own library {library}")
    overrides = []
    if not isinstance(raw.get("override", []), list) or not all(
        isinstance(e, dict) for e in raw.get("override", [])
    ):
        raise LadderError(
            f'{where}: override must be [[override]] tables (before = "version", then pins)'
        )
    for i, entry in enumerate(raw.get("override", [])):
        entry = dict(entry)
        before = _version(entry.pop("before", None), f"{where}: override #{i + 1} before")
        pins = _pins(entry, f"{where}: override #{i + 1}")
        if not set(pins) <= set(base):
            raise LadderError(
                f"{where}: override #{i + 1} may only change [base] pins, not"
                f" {', '.join(sorted(set(pins) - set(base)))}"
            )
        overrides.append((before, pins))
    rungs = []
    for v, text_v in zip(parsed, versions):
        pins = dict(base)
        for before, changes in overrides:
            if v < before:
                pins.update(changes)
        rungs.append(Rung(text_v, released[text_v], {library: text_v, **pins}))
    find_links = raw.get("find_links")
    if find_links is not None:
        find_links = (path.parent / str(find_links)).resolve()
        if not find_links.is_dir():
            raise LadderError(f"{where}: find_links {find_links} is not a folder")
    return Ladder(path.stem, library, tuple(rungs), find_links)


# -- the git repository ------------------------------------------------------------------


def _stamp(date: datetime.date) -> str:
    """git's raw date format: seconds since the epoch and the UTC offset."""
    at = datetime.datetime(date.year, date.month, date.day, RELEASE_HOUR, tzinfo=datetime.UTC)
    return f"{int(at.timestamp())} +0000"


def _git_env(date: datetime.date | None) -> dict[str, str]:
    # no user or system config (hooks, signing, templates) may change what is written
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0")
    for role in ("AUTHOR", "COMMITTER"):
        env[f"GIT_{role}_NAME"], env[f"GIT_{role}_EMAIL"] = IDENTITY
        if date is not None:
            env[f"GIT_{role}_DATE"] = f"@{_stamp(date)}"
    return env


def git(
    repo: Path, *args: str, date: datetime.date | None = None, stdin: str | None = None
) -> str:
    """Run git in `repo` with no user config; `date` sets author and committer dates."""
    proc = subprocess.run(
        ["git", "-C", str(repo), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=_git_env(date),
    )
    if proc.returncode != 0:
        raise LadderError(f"git {' '.join(args)} failed in {repo}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def _commit(
    repo: Path, files: dict[str, str], message: str, date: datetime.date, parent: str | None
) -> str:
    entries = []
    for name, content in sorted(files.items()):
        blob = git(repo, "hash-object", "-w", "--stdin", stdin=content)
        entries.append(f"100644 blob {blob}\t{name}\n")
    tree = git(repo, "mktree", stdin="".join(entries))
    return git(
        repo, "commit-tree", tree, *(["-p", parent] if parent else []), "-m", message, date=date
    )


def _tag(repo: Path, commit: str, name: str, date: datetime.date) -> str:
    body = (
        f"object {commit}\ntype commit\ntag {name}\ntagger {IDENTITY[0]} <{IDENTITY[1]}>"
        f" {_stamp(date)}\n\n{name}\n"
    )
    return git(repo, "mktag", stdin=body)


def _clear_interrupted(repo: Path) -> None:
    """What an interrupted build left beside `repo`: its scratch, once that build's process is
    gone (files.remove_stale), and any `.<repo>.<random>` folder, the tempfile.mkdtemp name
    builds used before files' one scheme (the ladder's folder is this code's own: nothing
    else is named so there)."""
    files.remove_stale(repo.parent, repo.name)
    for stale in repo.parent.glob(f".{repo.name}.*"):
        if not files.is_scratch(stale.name, repo.name):
            shutil.rmtree(stale, ignore_errors=True)


def write_repo(ladder: Ladder, repo: Path) -> list[str]:
    """Create or update the ladder's repository in place; returns the rung commits,
    oldest first."""
    if not (repo / ".git").is_dir():
        _clear_interrupted(repo)
        try:
            with files.replacing(
                repo
            ) as fresh:  # a half-initialised repository never sits at `repo`
                fresh.mkdir()
                git(fresh, "init", "--quiet", "--initial-branch", BRANCH)
        except OSError as e:
            if (repo / ".git").is_dir():
                pass  # another build made it meanwhile
            elif e.errno in (
                errno.ENOTEMPTY,
                errno.EEXIST,
                errno.ENOTDIR,
            ):  # something else sits at `repo`
                raise LadderError(
                    f"{repo} exists and is not a git repository; remove it and build again"
                ) from None
            else:
                raise LadderError(
                    f"{repo}: cannot create the ladder's repository ({e.strerror})"
                ) from None
    first = ladder.rungs[0].released
    readme = (
        f"Release ladder of {ladder.library}: one commit per release, oldest first, each tagged"
        " with\n"
        f"its version. {REQUIREMENTS} holds the exact pins asv installs for that release.\n"
    )
    head = _commit(
        repo,
        {"README": readme},
        f"{ladder.library} release ladder: root (no release)",
        first,
        None,
    )
    rungs, tags = [], {}
    for rung in ladder.rungs:
        head = _commit(
            repo,
            {"README": readme, REQUIREMENTS: rung.requirements(ladder.library)},
            f"{ladder.library} {rung.version}",
            rung.released,
            head,
        )
        rungs.append(head)
        tags[rung.version] = _tag(repo, head, rung.version, rung.released)
    old_tags = set(git(repo, "tag", "--list").split())
    ops = [f"update refs/heads/{BRANCH} {head}"]
    ops += [f"update refs/tags/{name} {obj}" for name, obj in tags.items()]
    ops += [f"delete refs/tags/{name}" for name in sorted(old_tags - set(tags))]
    git(repo, "update-ref", "--stdin", stdin="start\n" + "\n".join(ops) + "\nprepare\ncommit\n")
    git(repo, "symbolic-ref", "HEAD", f"refs/heads/{BRANCH}")
    return rungs


# -- the asv configuration ---------------------------------------------------------------


def _asv_runner_pin(conf: dict) -> str:
    pins = {entry.get("req", {}).get("asv_runner") for entry in conf.get("include", [])} - {None}
    if len(pins) != 1:
        raise LadderError(
            "asv.conf.json: every include entry must pin the same asv_runner, found"
            f" {sorted(pins)}"
        )
    return pins.pop()


def _fetch_requirements(ladder: Ladder, conf: dict) -> str:
    """What setup_cache's fetch needs (envcheck.fetch_requirements), installed into a rung beside
    the rung's own pins, so `asv run` on a ladder fetches a remote dataset with the same code as
    `make data`. Not for a find_links ladder: it installs from its folder alone (--no-index), which
    holds its own wheels; its rungs read sets prepared first (`make ladder` runs `make data`)."""
    if ladder.find_links:
        return ""
    try:
        return " ".join(fetch_requirements(conf, REPO / "constraints.txt"))
    except (EnvCheckError, OSError) as e:
        raise LadderError(f"the fetch's pins: {e}") from None


def asv_config(ladder: Ladder, repo: Path, main_conf: dict) -> dict:
    """The main config with the ladder repository as its project and one environment for every
    rung."""
    source = (
        f"--no-index --find-links {shlex.quote(str(ladder.find_links))}"
        if ladder.find_links
        else ""
    )
    requirements = "{build_dir}/" + REQUIREMENTS
    conf = {
        k: v
        for k, v in main_conf.items()
        if k not in ("repo_subdir", "matrix", "include", "exclude")
    }
    conf.update(
        project=f"{main_conf.get('project', 'imgload-benchmarks')} ({ladder.library} releases)",
        repo=str(repo),
        branches=[BRANCH],
        dvcs="git",
        benchmark_dir=str(REPO / "benchmarks"),
        env_dir="env",
        results_dir="results",
        html_dir="html",
        build_command=[],
        # one environment takes every rung in turn; pip's cache shares downloaded wheels
        # between rungs and ladders. --no-deps: the pins are the whole stack (the rung's and the
        # fetch's), pip check proves it.
        install_command=[
            " ".join(
                filter(
                    None,
                    [
                        "in-dir={env_dir} python -m pip install --only-binary=:all: --no-deps",
                        source,
                        _fetch_requirements(ladder, main_conf),
                        "-r",
                        requirements,
                    ],
                )
            ),
            # run from the repository so that `python -m imgload.envcheck` finds the package
            # (asv drops PYTHONPATH from the commands it runs)
            f"in-dir={shlex.quote(str(REPO))} python -m imgload.envcheck"
            f" --requirements {requirements} --record-dir {{conf_dir}}/envinfo",
        ],
        uninstall_command=[],
        matrix={"req": {"asv_runner": _asv_runner_pin(main_conf)}},
    )
    return conf


def build(
    name_or_path: str | os.PathLike,
    root: str | os.PathLike | None = None,
    main_conf: Path = REPO / "asv.conf.json",
) -> Path:
    """Build (or rebuild, identically) a ladder's repository and asv config;
    returns the config path."""
    ladder = load(name_or_path)
    out = built_folder(ladder, root)
    out.mkdir(parents=True, exist_ok=True)
    rungs = write_repo(ladder, out / "repo")
    conf = asv_config(ladder, out / "repo", json.loads(main_conf.read_text()))
    write_atomic(out / "rungs.txt", "\n".join(rungs) + "\n")
    write_atomic(out / "asv.conf.json", json.dumps(conf, indent=4) + "\n")
    return out / "asv.conf.json"


def check_built_here(conf_path: Path) -> None:
    """A built ladder's config names absolute paths (its repository, this checkout's envcheck);
    one copied or moved from another checkout would silently measure that checkout."""
    try:
        conf = json.loads(conf_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise LadderError(
            f"{conf_path}: unreadable ({e}); rebuild it: make ladder NAME={conf_path.parent.name}"
        ) from None
    expected = {"repo": str(conf_path.parent / "repo"), "envcheck in-dir": shlex.quote(str(REPO))}
    found = {
        "repo": conf.get("repo"),
        "envcheck in-dir": next(
            (
                c.split()[0].removeprefix("in-dir=")
                for c in conf.get("install_command", [])
                if "imgload.envcheck" in c
            ),
            None,
        ),
    }
    for key, want in expected.items():
        if found[key] != want:
            raise LadderError(
                f"{conf_path}: built for another checkout or folder ({key} {found[key]!r}, here"
                f" {want!r}); rebuild it here: make ladder NAME={conf_path.parent.name}"
            )
