"""Verify an asv environment before it is measured (asv's install_command runs this).

Each stack in asv.conf.json's `include` names itself in env IMGLOAD_STACK; this looks
that stack's pins up in the config, compares them with what is installed, runs
`pip check`, and exits non-zero with one line per mismatch, which stops asv from
measuring the environment. A verified environment leaves a record beside the results.

`--requirements FILE --record-dir DIR` checks a pinned requirements file instead (a
release ladder's rung, see imgload.ladder): the same version check and `pip check`.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from . import buildinfo
from .errors import UserError
from .files import write_atomic


class EnvCheckError(UserError):
    """A one-line reason an environment does not hold what it must. This module's own entry point
    (`python -m imgload.envcheck`, asv's install_command) prints it, naming the environment, and
    exits 1, which stops asv from measuring the environment."""


EXACT_VERSION = re.compile(r"[0-9][0-9a-zA-Z.+!]*")  # a release number, no range or wildcard

# setup_cache fetches a remote dataset with pooch inside every benchmark environment, so every
# stack pins pooch at the version constraints.txt gives .venv (the same fetch as `make data`).
# Only pooch: what it imports comes with it, checked by `pip check`. asv names an environment
# after all its pins, and with these seven the names outgrow a file name (envcheck's record is
# named after the environment). A ladder rung installs with --no-deps, so it gets them all, at
# .venv's versions (fetch_requirements).
FETCHER = "pooch"
FETCH_DEPENDENCIES = (
    "certifi",
    "charset-normalizer",
    "idna",
    "urllib3",
    "requests",
    "platformdirs",
    "packaging",
)


def canonical(name: str) -> str:
    """A distribution name as PEP 503 normalizes it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def stack_pins(conf: dict, stack: str) -> dict[str, str]:
    """The exact `req` pins of the include entry whose env sets IMGLOAD_STACK=stack."""
    for entry in conf.get("include", []):
        if entry.get("env", {}).get("IMGLOAD_STACK") == stack:
            pins = dict(entry.get("req", {}))
            loose = [k for k, v in pins.items() if not EXACT_VERSION.fullmatch(str(v))]
            if loose:
                raise EnvCheckError(
                    f"stack {stack}: pins must be exact versions, not"
                    f" {', '.join(f'{k}={pins[k]!r}' for k in loose)}"
                )
            return pins
    raise EnvCheckError(f"no stack {stack!r} in the config's include list")


def fetch_pin(conf: dict) -> str:
    """The version of pooch that every stack of the config pins, the same in all of them."""
    pins = {}
    for entry in conf.get("include", []):
        req = {canonical(k): str(v) for k, v in entry.get("req", {}).items()}
        stack = entry.get("env", {}).get("IMGLOAD_STACK", "?")
        if FETCHER not in req:
            raise EnvCheckError(
                f"stack {stack} does not pin {FETCHER},"
                " which fetching a dataset in setup_cache needs"
            )
        pins[stack] = req[FETCHER]
    if len(set(pins.values())) != 1:
        listed = ", ".join(f"{stack}: {v}" for stack, v in pins.items()) or "no stack"
        raise EnvCheckError(
            f"the stacks must pin one version of {FETCHER}, the fetch of every stack ({listed})"
        )
    return next(iter(pins.values()))


def fetch_requirements(conf: dict, constraints: Path) -> list[str]:
    """`name==version` of pooch as the stacks pin it and of what it imports as `constraints`
    (.venv's constraints.txt) pins it: what a ladder rung installs beside its own pins."""
    host = {canonical(k): v for k, v in requirement_pins(constraints).items()}
    missing = [name for name in FETCH_DEPENDENCIES if name not in host]
    if missing:
        raise EnvCheckError(
            f"{constraints} does not pin {', '.join(missing)}, which {FETCHER} imports"
        )
    return [
        f"{FETCHER}=={fetch_pin(conf)}",
        *(f"{name}=={host[name]}" for name in FETCH_DEPENDENCIES),
    ]


def mismatches(pins: dict[str, str]) -> list[str]:
    """'package: wanted X, installed Y' for every pin the environment does not hold."""
    problems = []
    for name, wanted in sorted(pins.items()):
        try:
            installed = metadata.version(canonical(name))
        except metadata.PackageNotFoundError:
            installed = "nothing"
        if installed != wanted:
            problems.append(f"{name}: wanted {wanted}, installed {installed}")
    return problems


def pip_check() -> list[str]:
    proc = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    if proc.returncode == 0:
        return []
    return [
        f"pip check: {line}" for line in (proc.stdout + proc.stderr).splitlines() if line.strip()
    ]


def record_name(env_name: str) -> str:
    """The record's file name (without .json) for an environment: asv's own rule for its
    results files (`asv.results.get_filename`). A stack with many pins has a name of a few
    hundred characters, longer than a file name may be, so from 128 on it is env-<md5>."""
    if len(env_name) >= 128:
        return "env-" + hashlib.md5(env_name.encode("utf-8")).hexdigest()
    return env_name


def record_path(conf: dict, conf_dir: Path, env_name: str) -> Path:
    results = Path(conf_dir) / conf.get("results_dir", ".asv/results")
    return results.parent / "envinfo" / f"{record_name(env_name)}.json"


def _write_record(out: Path, pins: dict[str, str], **identity) -> None:
    """The verified environment's record (versions and build info), written atomically."""
    record = {
        **identity,
        "verified_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "pins": pins,
        "installed": {name: metadata.version(canonical(name)) for name in pins},
        "build": buildinfo.collect(),  # what decides decode speed beyond the versions
    }
    write_atomic(out, json.dumps(record, indent=1))


def requirement_pins(path: Path) -> dict[str, str]:
    """`name==version` lines of a requirements file; comments and blank lines are skipped."""
    return parse_pins(Path(path).read_text(), str(path))


def parse_pins(text: str, source: str) -> dict[str, str]:
    """requirement_pins of text; `source` names it in errors."""
    pins = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(rf"([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*({EXACT_VERSION.pattern})", line)
        if not m:
            raise EnvCheckError(f"{source}:{n}: {line!r} is not an exact pin (name==version)")
        pins[m.group(1)] = m.group(2)
    return pins


def check_requirements(argv: list[str]) -> int:
    """--requirements FILE --record-dir DIR: verify the environment holds exactly FILE's pins."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m imgload.envcheck --requirements")
    p.add_argument("--requirements", required=True, type=Path)
    p.add_argument("--record-dir", required=True, type=Path)
    args = p.parse_args(argv)
    env_name = os.environ.get("ASV_ENV_NAME", "unknown-environment")
    commit = os.environ.get("ASV_COMMIT", "unknown-commit")
    where = f"imgload: environment {env_name} at {commit[:8]} ({args.requirements.name})"
    try:
        pins = requirement_pins(args.requirements)
        if not pins:
            raise EnvCheckError(f"{args.requirements} pins nothing")
        problems = mismatches(pins) + pip_check()
        if problems:
            raise EnvCheckError("does not match its pins: " + "; ".join(problems))
    except (EnvCheckError, OSError) as e:
        print(f"{where}: {e}", file=sys.stderr)
        return 1
    _write_record(
        args.record_dir / f"{env_name}-{commit[:8]}.json",
        pins,
        commit=commit,
        env_name=env_name,
        requirements=str(args.requirements),
    )
    print(f"{where}: {len(pins)} pins verified, pip check clean")
    return 0


def main(argv: list[str] | None = None) -> int:
    if argv and "--requirements" in argv:
        return check_requirements(argv)
    conf_path = Path(argv[0] if argv else "asv.conf.json").resolve()
    env_name = os.environ.get("ASV_ENV_NAME", "unknown-environment")
    stack = os.environ.get("IMGLOAD_STACK")
    try:
        if not stack:
            raise EnvCheckError(
                "IMGLOAD_STACK is not set: every include entry must set it in its env"
            )
        conf = json.loads(conf_path.read_text())
        pins = stack_pins(conf, stack)
        problems = mismatches(pins) + pip_check()
        if problems:
            raise EnvCheckError("does not match its pins: " + "; ".join(problems))
    except (EnvCheckError, OSError, json.JSONDecodeError) as e:
        print(f"imgload: environment {env_name} (stack {stack}): {e}", file=sys.stderr)
        return 1
    _write_record(
        record_path(conf, conf_path.parent, env_name), pins, stack=stack, env_name=env_name
    )
    print(
        f"imgload: environment {env_name} (stack {stack}): {len(pins)} pins verified,"
        " pip check clean"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
