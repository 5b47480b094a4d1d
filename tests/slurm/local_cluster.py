"""A real, throwaway single-node SLURM cluster for tests.

Everything lives in one folder: configuration, state, spool, logs, the MUNGE
key and (with accounting) a private MariaDB data directory.  The
daemons run in the foreground as children of this process, on free TCP ports.
Client commands (sbatch, squeue, sacct, ...) talk to this cluster when they
get :attr:`LocalSlurm.env` (``SLURM_CONF`` pointing at the folder's slurm.conf).

Inside a job, though, Snakemake's slurm-jobstep executor drops every
``SLURM_*`` variable but the job's identity before it calls ``srun``, as a real
cluster's nodes do not need SLURM_CONF.  So slurmd runs *configless*
(``--conf-server``): it fetches the configuration from slurmctld and links
/run/slurm/conf to its cache, which is where srun looks when there is no
SLURM_CONF and no /etc/slurm/slurm.conf.  Before it has a configuration
slurmd can only reach MUNGE at its default socket, so munged listens there
(/run/munge/munge.socket.2); a munged already answering there is used as it is
and left running.  The link and the socket are the only things placed outside
the folder; stop() removes them.  The cluster refuses to start where
/etc/slurm/slurm.conf exists or another slurmd owns /run/slurm/conf, because
srun inside the jobs would then talk to that other cluster.

    with LocalSlurm(folder) as cluster:          # starts, waits for an idle node
        subprocess.run(["sinfo"], env={**os.environ, **cluster.env})
                                                 # leaving: cancels jobs, stops daemons

Needs root (slurmd launches jobs, SlurmUser=root) and Debian's packages::

    apt-get install -y slurm-wlm munge                  # cluster, squeue status
    apt-get install -y slurmdbd mariadb-server          # optional: sacct accounting

No cgroups (ProctrackType=proctrack/linuxproc, TaskPlugin=task/none), so it runs
in containers and VMs without systemd.  GPUs are fake: gres.conf maps ``gpu``
to /dev/tty0.. so that Slurm schedules them and sets CUDA_VISIBLE_DEVICES.
Memory and CPU counts are taken from slurm.conf (SlurmdParameters=
config_overrides) and not enforced.

Run as a script to get a cluster for manual experiments::

    python tests/slurm/local_cluster.py [--no-accounting] [FOLDER]
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

CLUSTER_PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel")
ACCOUNTING_PROGRAMS = ("mariadbd", "mariadb-install-db", "mariadb", "mariadb-admin", "slurmdbd", "sacctmgr", "sacct")
# Marks every line the task prolog writes into a job's output.
PROLOG_TAG = "LOCAL_SLURM_TASK_PROLOG"
# Environment variable carried by every daemon and job of a cluster: its folder.
MARKER = "LOCAL_SLURM_CLUSTER"
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")   # srun's default, read before the configless cache
CONFIGLESS_LINK = Path("/run/slurm/conf")     # where configless slurmd links its cached config
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")  # MUNGE's (and Slurm's) default


def missing_programs(accounting: bool = False) -> list[str]:
    """Programs the cluster (and, with ``accounting``, slurmdbd) needs but PATH lacks."""
    wanted = CLUSTER_PROGRAMS + (ACCOUNTING_PROGRAMS if accounting else ())
    return [p for p in wanted if shutil.which(p) is None and not Path("/usr/sbin", p).exists()]


def cannot_start(accounting: bool = False) -> str | None:
    """Why a local cluster cannot run on this machine, or None."""
    missing = missing_programs(accounting)
    if missing:
        return (f"SLURM is not installed (missing {', '.join(missing)}): apt-get install -y slurm-wlm munge"
                + " slurmdbd mariadb-server" * accounting)
    if os.geteuid() != 0:
        return "a local SLURM cluster needs root (slurmd starts the jobs, SlurmUser=root)"
    if SYSTEM_CONF.exists():
        return f"{SYSTEM_CONF} exists: srun inside the test's jobs would talk to that cluster"
    if CONFIGLESS_LINK.is_symlink() and CONFIGLESS_LINK.exists():
        return f"{CONFIGLESS_LINK} -> {os.readlink(CONFIGLESS_LINK)}: another configless slurmd runs here"
    return None


def _which(program: str) -> str:
    return shutil.which(program) or str(Path("/usr/sbin", program))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clean_environ() -> dict[str, str]:
    """This process's environment without settings that would steer SLURM clients
    elsewhere (as inside an allocation of another cluster)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("SLURM_", "SBATCH_", "SALLOC_", "SRUN_", "SQUEUE_", "SACCT_"))}


class LocalSlurmError(RuntimeError):
    pass


class LocalSlurm:
    """One node ``localhost`` with ``cpus`` CPUs, ``gpus`` fake GPUs and
    ``memory_mb`` MB in partition ``partition``.

    accounting: run MariaDB + slurmdbd so that ``sacct`` works (the SLURM
    executor plugin's default status command); None: when their programs are
    installed.  Without it use ``--slurm-status-command squeue`` (MinJobAge is
    an hour, so finished jobs stay visible to squeue and scontrol).
    """

    def __init__(self, root: str | Path, *, partition: str = "debug", cpus: int = 2, gpus: int = 2,
                 memory_mb: int = 32000, accounting: bool | None = None, cluster_name: str = "localtest"):
        self.root = Path(root).resolve()
        self.partition, self.cpus, self.gpus, self.memory_mb = partition, cpus, gpus, memory_mb
        self.cluster_name = cluster_name
        self.accounting = not missing_programs(accounting=True) if accounting is None else accounting
        self.etc, self.logs = self.root / "etc", self.root / "log"
        self.conf = self.etc / "slurm.conf"
        self.db_socket = self.root / "db" / "mysqld.sock"
        self.ports: dict[str, int] = {}
        # name -> Popen of every daemon this object started, in start order
        self.processes: dict[str, subprocess.Popen] = {}
        self.killed_leftovers: list[int] = []
        self._log_handles: list = []          # open daemon output files, closed by stop()
        self._created_dirs: list[Path] = []   # system folders start() created, removed by stop() if empty

    # ---- public ------------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """Environment additions that point SLURM clients at this cluster.
        LOCAL_SLURM_CLUSTER marks the processes of this cluster (jobs inherit it
        through sbatch --export=ALL) so that stop() can find stragglers."""
        return {"SLURM_CONF": str(self.conf), MARKER: str(self.root)}

    @property
    def environ(self) -> dict[str, str]:
        """A full environment for SLURM clients and daemons of this cluster."""
        return {**_clean_environ(), **self.env}

    def run(self, *cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a SLURM client command against this cluster."""
        result = subprocess.run(cmd, capture_output=True, text=True, env=self.environ, timeout=timeout)
        if check and result.returncode != 0:
            raise LocalSlurmError(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def start(self, timeout: float = 90) -> "LocalSlurm":
        """Write the configuration, start the daemons and wait until the node is idle.
        Stops whatever it started when a step fails."""
        problem = cannot_start(self.accounting)
        if problem:
            raise LocalSlurmError(problem)
        deadline = time.monotonic() + timeout
        # system folders that munged and slurmd create; stop() removes them if empty
        self._created_dirs = [d for d in (MUNGE_SOCKET.parent, CONFIGLESS_LINK.parent) if not d.exists()]
        try:
            self._write_config()
            self._start_munge(deadline)
            if self.accounting:
                self._start_database(deadline)
                self._start_slurmdbd(deadline)
            self._spawn("slurmctld", [_which("slurmctld"), "-D", "-i"])
            self._wait(deadline, "slurmctld answering", lambda: "UP" in self.run("scontrol", "ping", check=False).stdout)
            # configless, without SLURM_CONF: see the module's docstring
            self._spawn("slurmd", [_which("slurmd"), "-D", "-N", "localhost",
                                   "--conf-server", f"127.0.0.1:{self.ports['slurmctld']}"], slurm_conf=False)
            self._wait(deadline, "node localhost idle", self._node_idle)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Cancel every job, stop the daemons this object started (by PID, last
        started first) and kill any job process of this cluster still alive."""
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            try:
                jobs = self.run("squeue", "-h", "-o", "%A", check=False).stdout.split()
                if jobs:
                    self.run("scancel", *jobs, check=False)
                    end = time.monotonic() + 20
                    while self.run("squeue", "-h", "-o", "%A", check=False).stdout.split() and time.monotonic() < end:
                        time.sleep(0.5)
            except (subprocess.SubprocessError, OSError):
                pass
        for name, proc in reversed(list(self.processes.items())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for handle in self._log_handles:
            handle.close()
        self._log_handles = []
        self.killed_leftovers = self._kill_leftovers()
        if CONFIGLESS_LINK.is_symlink() and os.readlink(CONFIGLESS_LINK).startswith(str(self.root)):
            CONFIGLESS_LINK.unlink()
        if "munged" in self.processes:  # munged removes its socket; not its lock file
            Path(f"{MUNGE_SOCKET}.lock").unlink(missing_ok=True)
        for folder in self._created_dirs:
            with contextlib.suppress(OSError):
                folder.rmdir()

    def __enter__(self) -> "LocalSlurm":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def alive(self) -> dict[str, bool]:
        return {name: proc.poll() is None for name, proc in self.processes.items()}

    def leftover_pids(self) -> list[int]:
        """PIDs of processes that carry this cluster's marker (the daemons,
        slurmstepd, jobs and their steps), other than this process."""
        marker = f"{MARKER}={self.root}".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
            except OSError:
                continue
        return pids

    def log_tail(self, lines: int = 30) -> str:
        """The end of every daemon log, for failure messages."""
        out = []
        for path in sorted(self.logs.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"==> {path.name} <==\n" + "\n".join(text))
        return "\n".join(out)

    def jobs(self) -> list[dict[str, str]]:
        """Every job the cluster ran: JobID, JobName, State, ExitCode, Comment,
        AllocTRES (``sacct`` with accounting, else ``scontrol show job``)."""
        if self.accounting:
            fields = ["JobID", "JobName", "State", "ExitCode", "AllocTRES", "Comment"]
            out = self.run("sacct", "-a", "-X", "-n", "-P", "-S", "now-1days",
                           f"--format={','.join(fields)}").stdout
            return [dict(zip(fields, line.split("|", len(fields) - 1))) for line in out.splitlines() if line]
        # -d adds JOB_GRES; scontrol's TRES lacks the GPUs that sacct's AllocTRES lists
        out = self.run("scontrol", "-d", "-o", "show", "job").stdout
        jobs = []
        for line in out.splitlines():
            if not line.startswith("JobId="):
                continue
            record = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            tres = record.get("TRES", "")
            gpus = re.match(r"gpu(?::[^:,]+)?:(\d+)", record.get("JOB_GRES", ""))
            if gpus:
                tres += f",gres/gpu={gpus.group(1)}"
            jobs.append({"JobID": record["JobId"], "JobName": record.get("JobName", ""),
                         "State": record.get("JobState", ""), "ExitCode": record.get("ExitCode", ""),
                         "AllocTRES": tres, "Comment": record.get("Comment", "")})
        return jobs

    # ---- configuration -----------------------------------------------------------------

    def _write_config(self) -> None:
        for folder in (self.etc, self.logs, self.root / "state", self.root / "spool"):
            folder.mkdir(parents=True, exist_ok=True)
        self.ports = {"slurmctld": _free_port(), "slurmd": _free_port()}
        if self.accounting:
            self.ports.update(slurmdbd=_free_port(), mariadb=_free_port())
        auth = "AuthType=auth/munge\n"
        prolog = self.etc / "task_prolog.sh"
        # A TaskProlog's "print ..." lines go to the task's stdout (the job's log):
        # they show what the job's environment got from Slurm.
        prolog.write_text("#!/bin/sh\n"
                          f'echo "print {PROLOG_TAG} job=$SLURM_JOB_ID step=${{SLURM_STEP_ID:-batch}}'
                          ' CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-unset}"\n')
        prolog.chmod(0o755)
        accounting = (f"AccountingStorageType=accounting_storage/slurmdbd\n"
                      f"AccountingStorageHost=127.0.0.1\nAccountingStoragePort={self.ports['slurmdbd']}\n"
                      "AccountingStorageTRES=gres/gpu\nAccountingStoreFlags=job_comment\n"
                      if self.accounting else "AccountingStorageType=accounting_storage/none\n")
        self.conf.write_text(
            f"ClusterName={self.cluster_name}\n"
            "SlurmctldHost=localhost\n"
            f"SlurmctldPort={self.ports['slurmctld']}\nSlurmdPort={self.ports['slurmd']}\n"
            f"{auth}CredType=cred/munge\n"
            "SlurmUser=root\nSlurmdUser=root\n"
            f"StateSaveLocation={self.root / 'state'}\nSlurmdSpoolDir={self.root / 'spool'}\n"
            f"SlurmctldPidFile={self.root / 'slurmctld.pid'}\nSlurmdPidFile={self.root / 'slurmd.pid'}\n"
            f"SlurmctldLogFile={self.logs / 'slurmctld.log'}\nSlurmdLogFile={self.logs / 'slurmd.log'}\n"
            "SlurmctldDebug=info\nSlurmdDebug=info\n"
            # no cgroups: works without systemd and in containers
            "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nJobAcctGatherType=jobacct_gather/none\n"
            "MpiDefault=none\nReturnToService=2\n"
            "SlurmctldParameters=enable_configless\n"
            "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core_Memory\n"
            # without a default every job would claim the whole node's memory
            "DefMemPerCPU=500\n"
            # finished jobs stay visible to squeue/scontrol for an hour
            "MinJobAge=3600\n"
            # take CPUs, memory and GPUs from this file, not from the hardware
            "SlurmdParameters=config_overrides\n"
            f"TaskProlog={prolog}\n"
            "GresTypes=gpu\n"
            f"{accounting}"
            "JobCompType=jobcomp/none\n"
            f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} "
            f"Gres=gpu:{self.gpus} State=UNKNOWN\n"
            f"PartitionName={self.partition} Nodes=localhost Default=YES MaxTime=INFINITE State=UP\n")
        # Slurm drops GPUs without a device file; any character device will do.
        self.etc.joinpath("gres.conf").write_text(
            f"NodeName=localhost Name=gpu File=/dev/tty[0-{self.gpus - 1}]\n" if self.gpus > 1
            else "NodeName=localhost Name=gpu File=/dev/tty0\n")
        if self.accounting:
            dbd = self.etc / "slurmdbd.conf"
            dbd.write_text(
                f"{auth}DbdHost=localhost\nDbdAddr=127.0.0.1\nDbdPort={self.ports['slurmdbd']}\n"
                "SlurmUser=root\n"
                f"PidFile={self.root / 'slurmdbd.pid'}\nLogFile={self.logs / 'slurmdbd.log'}\n"
                "StorageType=accounting_storage/mysql\n"
                f"StorageHost=127.0.0.1\nStoragePort={self.ports['mariadb']}\n"
                "StorageUser=slurm\nStoragePass=slurm\nStorageLoc=slurm_acct_db\n")
            dbd.chmod(0o600)  # slurmdbd refuses a readable file with a password in it

    # ---- daemons -----------------------------------------------------------------------

    def _spawn(self, name: str, cmd: list[str], slurm_conf: bool = True) -> subprocess.Popen:
        out = open(self.logs / f"{name}.out.log", "ab")
        self._log_handles.append(out)
        # Own session: a Ctrl-C meant for the test runner does not reach the daemons
        # before stop() does its orderly shutdown.
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=self.environ if slurm_conf else {**_clean_environ(), MARKER: str(self.root)},
                                cwd=self.root, start_new_session=True)
        self.processes[name] = proc
        return proc

    def _wait(self, deadline: float, what: str, ready) -> None:
        while True:
            dead = [name for name, alive in self.alive().items() if not alive]
            if dead:
                raise LocalSlurmError(f"{', '.join(dead)} exited while waiting for {what}\n{self.log_tail()}")
            try:
                if ready():
                    return
            except (subprocess.SubprocessError, OSError):
                pass
            if time.monotonic() > deadline:
                raise LocalSlurmError(f"timed out waiting for {what}\n{self.log_tail()}")
            time.sleep(0.3)

    def _munge_answers(self) -> bool:
        return subprocess.run(["munge", "-n", "-S", str(MUNGE_SOCKET)], capture_output=True).returncode == 0

    def _start_munge(self, deadline: float) -> None:
        if self._munge_answers():
            return  # the machine's munged: use it, leave it alone
        # munged insists that every folder above its socket is searchable by all
        MUNGE_SOCKET.parent.mkdir(mode=0o755, exist_ok=True)
        key = self.etc / "munge.key"
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(1024))
        # --force: munged refuses to run as root otherwise, and takes over a stale socket
        self._spawn("munged", [_which("munged"), "--foreground", "--force", f"--socket={MUNGE_SOCKET}",
                               f"--key-file={key}", f"--pid-file={self.root / 'munged.pid'}",
                               f"--seed-file={self.root / 'munged.seed'}",
                               f"--log-file={self.logs / 'munged.log'}"])
        self._wait(deadline, "munged", self._munge_answers)

    def _start_database(self, deadline: float) -> None:
        data = self.db_socket.parent
        data.mkdir(parents=True, exist_ok=True)
        with open(self.logs / "mariadb-install-db.log", "wb") as log:
            subprocess.run([_which("mariadb-install-db"), "--no-defaults", f"--datadir={data}", "--user=root",
                            "--skip-test-db", "--auth-root-authentication-method=socket"],
                           stdout=log, stderr=subprocess.STDOUT, check=True, env=self.environ, timeout=120)
        self._spawn("mariadbd", [_which("mariadbd"), "--no-defaults", f"--datadir={data}", "--user=root",
                                 f"--socket={self.db_socket}", "--bind-address=127.0.0.1",
                                 f"--port={self.ports['mariadb']}", f"--pid-file={data / 'mariadbd.pid'}",
                                 f"--log-error={self.logs / 'mariadbd.log'}", "--innodb-buffer-pool-size=64M",
                                 "--innodb-lock-wait-timeout=900"])
        client = ["--no-defaults", f"--socket={self.db_socket}", "--user=root"]
        self._wait(deadline, "mariadbd", lambda: subprocess.run(
            [_which("mariadb-admin"), *client, "ping"], capture_output=True).returncode == 0)
        sql = ("CREATE DATABASE slurm_acct_db;"
               + "".join(f"CREATE USER 'slurm'@'{host}' IDENTIFIED BY 'slurm';"
                         f"GRANT ALL ON slurm_acct_db.* TO 'slurm'@'{host}';" for host in ("127.0.0.1", "localhost")))
        subprocess.run([_which("mariadb"), *client, "-e", sql], capture_output=True, check=True, timeout=30)

    def _start_slurmdbd(self, deadline: float) -> None:
        self._spawn("slurmdbd", [_which("slurmdbd"), "-D"])
        self._wait(deadline, "slurmdbd", lambda: self.run("sacctmgr", "-n", "list", "cluster", check=False).returncode == 0)
        self.run("sacctmgr", "-i", "add", "cluster", self.cluster_name)

    def _node_idle(self) -> bool:
        state = self.run("sinfo", "-h", "-N", "-n", "localhost", "-o", "%T", check=False).stdout.strip()
        if state.startswith(("inval", "drain")):
            # the node's configuration was refused (e.g. GPUs without device files)
            raise LocalSlurmError(f"node localhost is {state}:\n"
                                  + self.run("scontrol", "show", "node", "localhost", check=False).stdout)
        return state == "idle"

    def _kill_leftovers(self) -> list[int]:
        pids = self.leftover_pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids


def main(argv: list[str]) -> int:
    import tempfile

    accounting = None if "--no-accounting" not in argv else False
    args = [a for a in argv if not a.startswith("--")]
    root = Path(args[0]) if args else Path(tempfile.mkdtemp(prefix="local-slurm-"))
    start = time.monotonic()
    with LocalSlurm(root, accounting=accounting) as cluster:
        print(f"cluster up in {time.monotonic() - start:.1f} s (accounting: {cluster.accounting})")
        print(f"export SLURM_CONF={cluster.conf}")
        print("Ctrl-C stops it.", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
