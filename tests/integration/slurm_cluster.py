"""A real single-node SLURM cluster for the farm tests: munged, slurmctld and slurmd (Debian ``slurm-wlm`` +
``munge``) started as root on the loopback host with a temporary slurm.conf, key and state folder, and stopped
again. Nothing of the system configuration (/etc/slurm, /etc/munge, /run/munge) is used or changed: every daemon
gets its own socket, ports, pid and log files under the temporary folder, so it can run beside a real cluster.

The client commands (sbatch, squeue, scontrol, scancel) find this cluster through ``SLURM_CONF``; ``env()`` gives
the environment to run them (and scripts/render.py --submit slurm) with."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel")


def missing_reason() -> Optional[str]:
    """Why a cluster cannot be started here (None when it can)."""
    absent = [d for d in DAEMONS if not shutil.which(d, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")]
    if absent:
        return (f"SLURM/munge not installed ({', '.join(absent)} missing): apt-get install slurm-wlm munge "
                f"(scripts/dev.py setup --tests does it as root)")
    if os.geteuid() != 0:
        return "starting slurmctld/slurmd needs root (they run as SlurmUser=root on the loopback host)"
    return None


def _which(name: str) -> str:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") or name


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_resources() -> Dict[str, str]:
    """The node's real CPU count and memory as slurmd itself detects them (``slurmd -C``)."""
    out = subprocess.run([_which("slurmd"), "-C"], capture_output=True, text=True, timeout=60).stdout
    fields = dict(tok.split("=", 1) for tok in out.split() if "=" in tok)
    return {k: fields[k] for k in ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore",
                                   "RealMemory") if k in fields}


class SlurmCluster:
    def __init__(self, root: Path, partition: str = "render"):
        self.root = Path(root)
        self.partition = partition
        self.host = socket.gethostname().split(".")[0]
        self.procs: List[subprocess.Popen] = []
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self.resources: Dict[str, str] = {}

    # ------------------------------------------------------------------ configuration
    def write_config(self) -> None:
        for sub in ("munge", "state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root / "munge", 0o700)
        self.resources = node_resources()
        node = " ".join(f"{k}={v}" for k, v in self.resources.items())
        lines = [
            "ClusterName=ganpacktest",
            f"SlurmctldHost={self.host}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={self.root / 'state'}",
            f"SlurmdSpoolDir={self.root / 'spool'}",
            f"SlurmctldPidFile={self.root / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.root / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.root / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={self.root / 'log' / 'slurmd.log'}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/linux",
            "JobAcctGatherFrequency=task=2",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "SchedulerType=sched/backfill",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "MpiDefault=none",
            "ReturnToService=2",
            "KillWait=5",
            "MinJobAge=600",
            "SchedulerParameters=sched_interval=1",
            "InactiveLimit=0",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=60",
            f"NodeName={self.host} NodeAddr=127.0.0.1 {node} State=UNKNOWN",
            f"PartitionName={self.partition} Nodes={self.host} Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        (self.root / "cgroup.conf").write_text("CgroupPlugin=autodetect\n")

    def env(self) -> Dict[str, str]:
        env = dict(os.environ)
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = env.get("PATH", "") + ":/usr/sbin:/sbin"
        return env

    # ------------------------------------------------------------------ daemons
    def _daemon(self, cmd: List[str], name: str) -> subprocess.Popen:
        log = open(self.root / "log" / f"{name}.out", "wb")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env(), start_new_session=True)
        log.close()
        self.procs.append(proc)
        return proc

    def start(self, timeout: float = 60) -> "SlurmCluster":
        self.write_config()
        key = self.root / "munge" / "munge.key"
        subprocess.run([_which("mungekey"), "--create", "--keyfile", str(key)], check=True, capture_output=True)
        os.chmod(key, 0o400)
        self._daemon([_which("munged"), "--foreground", "--force", f"--socket={self.munge_socket}",
                      f"--key-file={key}", f"--pid-file={self.root / 'munge' / 'munged.pid'}",
                      f"--log-file={self.root / 'log' / 'munged.log'}",
                      f"--seed-file={self.root / 'munge' / 'munged.seed'}"], "munged")
        self._wait(lambda: self.munge_socket.exists(), timeout, "munged")
        self._daemon([_which("slurmctld"), "-D", "-i", "-f", str(self.conf)], "slurmctld")
        self._wait(lambda: self._ok(["scontrol", "ping"], "UP"), timeout, "slurmctld")
        self._daemon([_which("slurmd"), "-D", "-f", str(self.conf), "-N", self.host], "slurmd")
        self._wait(lambda: self._ok(["sinfo", "-h", "-o", "%t", "-n", self.host], "idle"), timeout, "slurmd")
        return self

    def _ok(self, cmd: List[str], want: str) -> bool:
        try:
            out = subprocess.run([_which(cmd[0]), *cmd[1:]], capture_output=True, text=True, timeout=10,
                                 env=self.env())
        except (OSError, subprocess.SubprocessError):
            return False
        return out.returncode == 0 and want in out.stdout

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{p.args[0]} exited with {p.returncode} while starting {what}:\n"
                                       + self.logs())
            if ready():
                return
            time.sleep(0.3)
        raise RuntimeError(f"{what} did not come up within {timeout:.0f} s:\n" + self.logs())

    def logs(self) -> str:
        out = []
        for f in sorted((self.root / "log").glob("*")):
            text = f.read_text(errors="replace")
            out.append(f"--- {f.name}\n{text[-3000:]}")
        return "\n".join(out)

    def stop(self) -> None:
        """Cancel what is left and stop the daemons (slurmd, slurmctld, munged)."""
        if self.procs:
            try:
                subprocess.run([_which("scancel"), "--full", "--user", "root"], capture_output=True, timeout=20,
                               env=self.env())
                # let the jobs' processes end (SIGTERM, then SIGKILL after KillWait) before slurmd goes
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    out = subprocess.run([_which("squeue"), "-h"], capture_output=True, text=True, timeout=10,
                                         env=self.env())
                    if out.returncode != 0 or not out.stdout.strip():
                        break
                    time.sleep(0.5)
            except (OSError, subprocess.SubprocessError):
                pass
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, 9)
                    p.wait()
        self.procs = []

    def __enter__(self) -> "SlurmCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
