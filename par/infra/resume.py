"""Resume a run whose Snakemake was killed (node crash, OOM kill, ``kill -9``).

A Snakemake killed without a chance to clean up leaves two things behind in
its working directory:

* its **lock** (``.snakemake/locks/``): the next Snakemake stops with
  "Directory cannot be locked", because Snakemake cannot tell a dead owner
  from a live one;
* **incomplete markers** (``.snakemake/incomplete/``) for the outputs of the
  jobs that were running: Snakemake refuses to trust such an output until it
  is re-made (``--rerun-incomplete``).

Every output of this pipeline is written to a temporary file and renamed into
place (``par.infra.io``), so no file a killed job leaves is partial; a job killed
between its renames (``learn_task`` writes the state, then the record) leaves
a complete file that Snakemake still marks incomplete and re-makes.

This module tells a stale lock from a live Snakemake.  The workflow's
``onstart`` calls :func:`record_owner`, which writes
``.snakemake/par-owners/<host>-<pid>.json`` (host, pid, start time, command)
and holds an exclusive ``flock`` on it for the life of the Snakemake process.
The kernel releases that lock when the process dies, however it dies, so a
record whose lock can be taken belongs to a Snakemake that is gone.  Then

    python -m par.infra.resume all_tables --cores 2 --configfile config/demo.yaml

(the arguments of the interrupted command) checks the records and, only when
no recorded Snakemake is alive, deletes the outputs Snakemake marked incomplete
(see :func:`remove_incomplete_outputs`), runs ``snakemake --unlock`` with those
arguments (Snakemake itself removes its lock) and then the command itself with
``--rerun-incomplete``.  When a recorded Snakemake is alive, or when a lock
has no record at all, it changes nothing and says why.

This module never imports Snakemake; it runs it as ``python -m snakemake``.
"""
from __future__ import annotations

import argparse
import atexit
import base64
import datetime
import errno
import fcntl
import json
import os
import shlex
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

OWNERS_DIR = Path(".snakemake") / "par-owners"
LOCKS_DIR = Path(".snakemake") / "locks"
INCOMPLETE_DIR = Path(".snakemake") / "incomplete"
# Set by `python -m par.infra.resume` for the Snakemake processes it starts, so that
# the workflow does not print its stale-lock hint while the lock is removed.
RESUMING_ENV = "PAR_RESUMING"

_held: list[int] = []  # descriptors of this process's own records, locked until it exits


@dataclass(frozen=True)
class Owner:
    """One Snakemake that started jobs in a working directory.

    ``alive`` is False only when that Snakemake is known to be gone: its record's
    flock could be taken, or (on a file system without flock) it ran on this
    host and its pid no longer exists.
    """

    path: Path
    host: str
    pid: int
    started: str
    command: str
    alive: bool

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host}, started {self.started}: {self.command}"


def record_owner(workdir: str | os.PathLike = ".", argv: list[str] | None = None) -> Path:
    """Record this process as the Snakemake running in ``workdir``.

    Writes ``<workdir>/.snakemake/par-owners/<host>-<pid>.json`` and keeps an
    exclusive flock on it until the process exits (the file is removed at a
    normal exit).  Called from the workflow's ``onstart``, i.e. after Snakemake
    has taken its lock.  Returns the record's path.
    """
    host, pid = socket.gethostname(), os.getpid()
    # absolute: Snakemake leaves its --directory before the process exits
    path = (Path(workdir) / OWNERS_DIR / f"{host}-{pid}.json").resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)  # not inherited by jobs (PEP 446)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
        # no flock on this file system: liveness falls back to the pid on this host
    record = {"host": host, "pid": pid,
              "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "command": shlex.join(argv if argv is not None else sys.argv)}
    os.write(fd, (json.dumps(record, indent=2) + "\n").encode())
    os.fsync(fd)
    _held.append(fd)
    atexit.register(_release, fd, path)
    return path


def _release(fd: int, path: Path) -> None:
    path.unlink(missing_ok=True)
    os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _read_owner(path: Path) -> Owner:
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:  # its Snakemake just finished
        return Owner(path, "?", -1, "?", "?", alive=False)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked_by_other = False
        except BlockingIOError:
            locked_by_other = True
        except OSError:
            locked_by_other = None  # this file system cannot tell
        try:
            record = json.loads(os.read(fd, 1 << 16).decode() or "{}")
        except (ValueError, UnicodeDecodeError):
            record = {}  # killed while writing its record
    finally:
        os.close(fd)  # also releases the flock taken above
    host, pid = str(record.get("host", "?")), int(record.get("pid", -1))
    if locked_by_other is None:
        alive = _pid_alive(pid) if host == socket.gethostname() and pid > 0 else True
    else:
        alive = locked_by_other
    return Owner(path, host, pid, str(record.get("started", "?")), str(record.get("command", "?")), alive)


def owners(workdir: str | os.PathLike = ".") -> list[Owner]:
    """Every recorded Snakemake of ``workdir``, alive or not, oldest first."""
    folder = Path(workdir) / OWNERS_DIR
    found = [_read_owner(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return sorted(found, key=lambda o: o.started)


def lock_files(workdir: str | os.PathLike = ".") -> list[Path]:
    """Snakemake's lock files in ``workdir`` (empty when it is not locked)."""
    folder = Path(workdir) / LOCKS_DIR
    return sorted(folder.glob("*.lock")) if folder.is_dir() else []


def unrecorded_locks(workdir: str | os.PathLike = ".") -> list[Path]:
    """Lock files no record accounts for: written after the newest owner record.

    A Snakemake writes its lock before its ``onstart`` writes its record, so the
    lock of a recorded Snakemake is never newer than its record.  A newer lock
    belongs to a Snakemake that has not reached ``onstart`` (still building its
    DAG, perhaps alive) or that was killed before it.
    """
    records = [p.stat().st_mtime_ns for p in (Path(workdir) / OWNERS_DIR).glob("*.json")]
    newest = max(records, default=-1)
    return [lock for lock in lock_files(workdir) if lock.stat().st_mtime_ns > newest]


def incomplete_outputs(workdir: str | os.PathLike = ".") -> list[str]:
    """Outputs Snakemake marked as started and not finished (``.snakemake/incomplete/``,
    one file per output named by the base64 of its path, long names split into
    ``@``-prefixed folders), as Snakemake names them: relative to ``workdir``."""
    folder = Path(workdir) / INCOMPLETE_DIR
    found = []
    for marker in folder.rglob("*") if folder.is_dir() else []:
        if marker.is_file():
            encoded = "".join(part.lstrip("@") for part in marker.relative_to(folder).parts)
            found.append(base64.urlsafe_b64decode(encoded).decode())
    return sorted(found)


def remove_incomplete_outputs(workdir: str | os.PathLike = ".") -> list[str]:
    """Delete every existing output that Snakemake marked incomplete; return their names.

    Snakemake re-makes marked outputs with ``--rerun-incomplete`` only for jobs
    known when it builds its DAG; for jobs behind a checkpoint (here ``plan``:
    the PAR run's cell searches and learn-task jobs, its metrics) Snakemake
    9.27 does not look at the markers and keeps the files.  A deleted output is
    simply missing, so its job runs again, and Snakemake clears the markers when
    it finishes.  Call only when no Snakemake is running in ``workdir``.
    """
    removed = []
    for name in incomplete_outputs(workdir):
        path = Path(workdir) / name
        if path.is_file():
            path.unlink()
            removed.append(name)
    return removed


def stale_lock_hint(workdir: str | os.PathLike = ".", argv: list[str] | None = None) -> str | None:
    """A message for the user when ``workdir`` holds a lock whose owner is gone.

    None when there is no lock, when a recorded Snakemake is alive, when there
    is no record to judge by, or inside ``python -m par.infra.resume``.
    """
    if os.environ.get(RESUMING_ENV) or not lock_files(workdir):
        return None
    recorded = owners(workdir)
    if not recorded or any(o.alive for o in recorded) or unrecorded_locks(workdir):
        return None
    args = shlex.join((argv if argv is not None else sys.argv)[1:])
    gone = "\n".join(f"  {o.describe()}" for o in recorded)
    return ("The Snakemake lock in {dir} was left by a run that no longer exists (killed or crashed):\n{gone}\n"
            "If Snakemake stops with 'Directory cannot be locked', resume with\n"
            "  python -m par.infra.resume {args}\n"
            "which lets Snakemake remove the lock and re-runs what was interrupted "
            "(README: 'When a run is interrupted').").format(dir=Path(workdir).resolve(), gone=gone, args=args)


def _workdir(snakemake_args: list[str]) -> Path:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("-d", "--directory", default=".")
    known, _ = parser.parse_known_args(snakemake_args)
    return Path(known.directory)


def main(argv: list[str] | None = None) -> int:
    """``python -m par.infra.resume SNAKEMAKE_ARGS...``: see the module docstring.

    Exit status 0 or Snakemake's; 3 when a recorded Snakemake is still alive or
    a lock has no owner record (:func:`unrecorded_locks`; nothing is changed then).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    workdir = _workdir(args)
    recorded, locks = owners(workdir), lock_files(workdir)
    alive = [o for o in recorded if o.alive]
    if alive:
        print("Not resuming: a Snakemake is still running in {}:\n{}\nWait for it to finish, or stop it "
              "(kill -INT PID lets it clean up), then run this command again."
              .format(workdir.resolve(), "\n".join(f"  {o.describe()}" for o in alive)), file=sys.stderr)
        return 3
    if unrecorded_locks(workdir):
        print(f"Not resuming: {workdir.resolve() / LOCKS_DIR} holds a Snakemake lock but no record of the "
              "Snakemake that took it (it is still building its DAG, or was killed before starting any job, "
              "or ran without this workflow's onstart). If you are sure no Snakemake is running in this "
              "directory, remove the lock with\n"
              f"  snakemake --unlock {shlex.join(args)}\n"
              "and run your command again.", file=sys.stderr)
        return 3
    env = {**os.environ, RESUMING_ENV: "1"}
    snakemake = [sys.executable, "-m", "snakemake"]
    removed = remove_incomplete_outputs(workdir)
    if removed:
        print("Removed outputs of jobs that were running when Snakemake died (they will be made again):\n"
              + "\n".join(f"  {name}" for name in removed), file=sys.stderr)
    if locks:
        print(f"Stale lock: {len(recorded)} recorded Snakemake(s) no longer running:\n"
              + "\n".join(f"  {o.describe()}" for o in recorded) + "\nRemoving it with snakemake --unlock.",
              file=sys.stderr)
        unlocked = subprocess.run([*snakemake, "--unlock", *args], env=env)
        if unlocked.returncode != 0:
            return unlocked.returncode
    for owner in recorded:
        owner.path.unlink(missing_ok=True)
    sys.stderr.flush()
    os.execve(sys.executable, [*snakemake, "--rerun-incomplete", *args], env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
