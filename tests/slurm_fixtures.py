"""A real one-node SLURM for the tests: Debian's slurmctld / slurmd / munge, configured in a temporary folder.

The node has fake GPUs (a GRES backed by empty files), so GPU requests schedule as on a cluster, and
claims 8 cores / 16 GB / 4 GPUs whatever the machine has (`SlurmdParameters=config_overrides`), so jobs sized for a
GPU node still start. The daemons run in the foreground as children of the test process and are stopped by
their PIDs. The configuration must be /etc/slurm/slurm.conf (with gres.conf beside it): the Snakemake
job step starts `srun` without the job's SLURM_* variables, SLURM_CONF included, so only the default path
is found; files already there are put back afterwards. Packages are installed with apt-get when missing
(as root); where that is impossible the tests are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
PROGRAMS = ("slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo", "munged", "munge")
NODE_CPUS, NODE_MEM_MB, NODE_GPUS = 8, 16000, 4
CTLD_PORT, SLURMD_PORT = 16817, 16818  # not the defaults, so a system SLURM on the machine is not disturbed
CONF_DIR = Path("/etc/slurm")


def install_problem() -> str | None:
    """Install the SLURM and munge packages if missing; the reason when they cannot be had, else None."""
    if all(shutil.which(p) or Path("/usr/sbin", p).exists() for p in PROGRAMS):
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "SLURM is not installed and apt-get cannot install it here (needs root and apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES], env=env,
                         capture_output=True, text=True)
    if run.returncode != 0:  # a fresh machine may need the package lists first
        subprocess.run(["apt-get", "update"], env=env, capture_output=True)
        run = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES], env=env,
                             capture_output=True, text=True)
    if run.returncode != 0:
        return f"apt-get install {' '.join(PACKAGES)} failed: {run.stderr.strip()[-500:]}"
    return None


def _wait(check, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"one-node SLURM: {what} not ready after {timeout:.0f} s")
        time.sleep(0.5)


def _munge_works() -> bool:
    munge = subprocess.run(["munge", "-n"], capture_output=True)
    return munge.returncode == 0 and subprocess.run(["unmunge"], input=munge.stdout,
                                                    capture_output=True).returncode == 0


class OneNodeSlurm:
    """Start with `start()`, stop with `stop()`; `env` is what clients (and Snakemake) need."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.conf = CONF_DIR / "slurm.conf"
        self.procs: list[subprocess.Popen] = []
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.saved: dict[Path, bytes | None] = {}

    def _write(self, path: Path, text: str) -> None:
        if path not in self.saved:
            self.saved[path] = path.read_bytes() if path.exists() else None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def restore(self) -> None:
        for path, old in self.saved.items():
            if old is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(old)
        self.saved.clear()

    def write_config(self) -> None:
        host = socket.gethostname()
        for d in ("spool", "state", "log"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        gpus = [self.root / f"fake-gpu{i}" for i in range(NODE_GPUS)]
        for gpu in gpus:
            gpu.touch()
        self._write(CONF_DIR / "gres.conf", "".join(f"Name=gpu File={gpu}\n" for gpu in gpus))
        r = self.root
        lines = [
            "ClusterName=epeflowtest", f"SlurmctldHost={host}", "SlurmUser=root", "AuthType=auth/munge",
            "CredType=cred/munge", "MpiDefault=none", "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
            "ReturnToService=2", "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core_Memory",
            "GresTypes=gpu", "SlurmdParameters=config_overrides", f"SlurmctldPort={CTLD_PORT}",
            f"SlurmdPort={SLURMD_PORT}", f"SlurmctldPidFile={r}/slurmctld.pid", f"SlurmdPidFile={r}/slurmd.pid",
            f"SlurmdSpoolDir={r}/spool", f"StateSaveLocation={r}/state", f"SlurmctldLogFile={r}/log/slurmctld.log",
            f"SlurmdLogFile={r}/log/slurmd.log", "KillWait=30", "MinJobAge=60",
            "SchedulerParameters=sched_interval=2", "InactiveLimit=0",
            f"NodeName={host} CPUs={NODE_CPUS} RealMemory={NODE_MEM_MB} Gres=gpu:{NODE_GPUS} State=UNKNOWN",
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        ]
        self._write(self.conf, "# written by epeflow's tests (tests/slurm_fixtures.py)\n" + "\n".join(lines) + "\n")

    def _spawn(self, *cmd: str) -> None:
        log = open(self.root / "log" / f"{Path(cmd[0]).name}.out", "ab")  # noqa: SIM115 (kept for the daemon)
        self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                           start_new_session=True))

    def start(self) -> None:
        self.write_config()
        if not _munge_works():  # the machine's munged (default socket, the package's key) if running, else ours
            Path("/run/munge").mkdir(parents=True, exist_ok=True)
            shutil.chown("/run/munge", "munge", "munge")
            self._spawn("runuser", "-u", "munge", "--", "/usr/sbin/munged", "--foreground")
            _wait(_munge_works, "munged")
        self._spawn("slurmctld", "-D", "-i", "-f", str(self.conf))
        self._spawn("slurmd", "-D", "-f", str(self.conf))
        _wait(self.idle, "the node (sinfo idle)")

    def idle(self) -> bool:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, env=self.env).stdout
        return out.strip() == "idle"

    def squeue(self, *args: str) -> str:
        return subprocess.run(["squeue", "-h", *args], capture_output=True, text=True, env=self.env).stdout

    def stop(self) -> None:
        subprocess.run(["scancel", "--full", "-u", "root"], capture_output=True, env=self.env)
        for proc in reversed(self.procs):  # slurmd, slurmctld, then munged (the one we started, by PID)
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs.clear()
        self.restore()


def one_node_slurm(root: Path) -> Iterator[OneNodeSlurm]:
    cluster = OneNodeSlurm(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
