"""Does an environment hold exactly what requirements.lock pins (issue 27)?

    python tools/lockcheck.py .venv /tmp/clone-b/.venv     # each against the lock, and with each other

For each environment: ``pip freeze --all`` run by its own interpreter, less the
editable line of this project, compared with the lock's ``name==version`` pins
(names normalised as PyPI does).  Prints the differences and exits 1 when
there are any; two environments equal to the lock have identical freezes.
tests/test_environment.py uses :func:`read_lock` and :func:`compare`.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"
# A requirement line of the lock: `name==version \` (extras are never written by uv).
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def normalise(name: str) -> str:
    """A distribution name as PyPI compares them (PEP 503): lower case, runs of -_. as '-'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: str | Path = LOCK) -> dict[str, str]:
    """{normalised name: version} of every pin of a lock file written by
    ``uv pip compile`` (or pip-compile).  Raises ValueError naming the line of a
    requirement that is not pinned with ``==`` or carries no ``--hash``."""
    pins: dict[str, str] = {}
    lines = Path(path).read_text().splitlines()
    for number, line in enumerate(lines, 1):
        if not line or line[0] in "# \t":
            continue
        match = PIN.match(line)
        if match is None:
            raise ValueError(f"{path}:{number}: not a `name==version` pin: {line!r}")
        following = "".join(lines[number - 1:number + 1])
        if "--hash=sha256:" not in following:
            raise ValueError(f"{path}:{number}: {match.group(1)} is pinned without a --hash")
        pins[normalise(match.group(1))] = match.group(2)
    return pins


def freeze(python: str | Path) -> list[str]:
    """``pip freeze --all`` of the environment of ``python``, without editable
    installs (this project's `-e` line and the comment pip writes above it), sorted."""
    out = subprocess.run([str(python), "-m", "pip", "freeze", "--all"], capture_output=True, text=True,
                         check=True).stdout
    return sorted(line for line in out.splitlines() if line and not line.startswith(("-e ", "#")))


def parse_freeze(lines: list[str]) -> dict[str, str]:
    """{normalised name: version} of ``name==version`` freeze lines; raises
    ValueError for a line of another form (a direct URL, a local path)."""
    out = {}
    for line in lines:
        match = PIN.match(line)
        if match is None:
            raise ValueError(f"not installed from a pinned release: {line!r}")
        out[normalise(match.group(1))] = match.group(2)
    return out


def compare(installed: dict[str, str], lock: dict[str, str]) -> list[str]:
    """One line per difference between installed and locked versions (empty: equal)."""
    problems = []
    for name in sorted(installed.keys() | lock.keys()):
        have, want = installed.get(name), lock.get(name)
        if have != want:
            problems.append(f"{name}: installed {have or 'nothing'}, locked {want or 'nothing'}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("venvs", nargs="+", type=Path, help="virtual environments (folders with bin/python)")
    parser.add_argument("--lock", type=Path, default=LOCK)
    args = parser.parse_args(argv)
    lock = read_lock(args.lock)
    freezes, failed = {}, False
    for venv in args.venvs:
        freezes[venv] = freeze(venv / "bin" / "python")
        problems = compare(parse_freeze(freezes[venv]), lock)
        print(f"{venv}: {len(freezes[venv])} packages; "
              + ("equal to the lock" if not problems else f"{len(problems)} differ from the lock"))
        for problem in problems:
            print(f"  {problem}")
        failed |= bool(problems)
    if len(freezes) > 1:
        identical = len({tuple(f) for f in freezes.values()}) == 1
        print("pip freeze --all (less -e lines): " + ("identical" if identical else "DIFFERENT") + " in all")
        failed |= not identical
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
