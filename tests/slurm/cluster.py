"""A real single-node SLURM cluster on this machine, for tests (Debian `slurm-wlm` 22.05).

munged, MariaDB, slurmdbd, slurmctld and slurmd run as child processes of the test, every state,
spool, socket, log and pid file under one temporary directory; nothing is written to /etc.
Client commands find the cluster through `SLURM_CONF`, which `SlurmCluster.env()` sets, and
through a symlink at /etc/slurm/slurm.conf (the default path), because Snakemake's jobstep
executor removes SLURM_CONF from the environment of the `srun` it runs inside each job. The
symlink is made only where no slurm.conf exists (else the cluster refuses to start: this machine
has a real SLURM) and removed again on stop.

Accounting runs through slurmdbd on a private MariaDB because snakemake-executor-plugin-slurm
(2.x) polls job states with `sacct` by default and validates `slurm_account` with `sacctmgr`
(falling back to `sshare`): without a database both would fail or need plugin-specific flags a
real cluster does not need.

Run `python tests/slurm/cluster.py DIR` to start a cluster by hand (Ctrl-C stops it).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ["munge", "slurmctld", "slurmd", "slurmdbd", "slurm-client", "mariadb-server"]
BINARIES = ["munged", "slurmctld", "slurmd", "slurmdbd", "sbatch", "squeue", "sacct",
            "sacctmgr", "srun", "mariadbd", "mariadb-install-db"]
SBIN = ("/usr/sbin", "/sbin")
# Where SLURM commands look when SLURM_CONF is unset: the jobstep executor strips SLURM_CONF from
# the environment of its nested `srun`, so jobs need the config at the system default path.
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
OURS = "taxvlm-test-slurm"  # a marker in the path of every config this module writes

CLUSTER = "taxvlmtest"
PARTITION = "debug"
ACCOUNT = "taxvlm"
# With fake GPUs, two more partitions over the node, as a site with GPUs has them: jobs that ask for
# a GPU belong on GPU_PARTITION, all others on CPU_PARTITION (tests read placement from sacct/scontrol).
CPU_PARTITION = "cpu"
GPU_PARTITION = "gpu"
# Memory the node declares with fake GPUs (SlurmdParameters=config_overrides: registered as configured
# even where the machine has less), so the shipped profile's requests are scheduled as they are.
DECLARED_MEMORY_MB = 96000


class SlurmUnavailable(RuntimeError):
    """SLURM cannot be installed here (not root, no apt-get): the caller should skip."""


def _which(name: str) -> str | None:
    path = os.environ.get("PATH", "") + os.pathsep + os.pathsep.join(SBIN)
    return shutil.which(name, path=path)


def missing_binaries() -> list[str]:
    return [name for name in BINARIES if _which(name) is None]


def ensure_installed(timeout: float = 900) -> float:
    """Install the Debian packages if a binary is missing; returns the seconds it took."""
    if not missing_binaries():
        return 0.0
    if os.geteuid() != 0:
        raise SlurmUnavailable(f"SLURM binaries missing ({missing_binaries()}) and not root")
    if shutil.which("apt-get") is None:
        raise SlurmUnavailable(f"SLURM binaries missing ({missing_binaries()}) and no apt-get")
    start = time.monotonic()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Packages must not start system-wide daemons (munge, mariadb) from their postinst scripts.
    policy = Path("/usr/sbin/policy-rc.d")
    created_policy = not policy.exists()
    if created_policy:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, timeout=timeout,
                       capture_output=True, text=True)
        result = subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
            env=env, timeout=timeout, capture_output=True, text=True,
        )
    finally:
        if created_policy:
            policy.unlink(missing_ok=True)
    if result.returncode != 0 or missing_binaries():
        raise RuntimeError(
            f"apt-get install {' '.join(PACKAGES)} failed (missing: {missing_binaries()}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return time.monotonic() - start


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.3, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")


def node_hardware() -> dict[str, int]:
    """CPUs and memory as slurmd sees them (`slurmd -C`)."""
    out = subprocess.run([_which("slurmd"), "-C"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    fields = dict(item.split("=", 1) for item in out.split()[:] if "=" in item)
    return {
        "cpus": int(fields["CPUs"]),
        "sockets": int(fields.get("SocketsPerBoard", 1)),
        "cores": int(fields.get("CoresPerSocket", fields["CPUs"])),
        "threads": int(fields.get("ThreadsPerCore", 1)),
        "memory": int(fields["RealMemory"]),
    }


@dataclass
class SlurmCluster:
    root: Path
    host: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    hardware: dict[str, int] = field(default_factory=dict)
    startup_seconds: float = 0.0
    # Advertise this many GPUs as a `gpu` GRES backed by no GPU (/dev/null, ...; at most 4), so GPU
    # requests (--gres/--gpus) are scheduled; adds the CPU_PARTITION and GPU_PARTITION partitions.
    fake_gpus: int = 0

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve() / OURS
        self.conf = self.root / "etc/slurm.conf"
        self.munge_socket = self.root / "munge/munge.socket"
        self.ports = {name: free_port() for name in ("mysql", "dbd", "ctld", "slurmd")}

    # ------------------------------------------------------------------ helpers
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = env.get("PATH", "") + os.pathsep + os.pathsep.join(SBIN)
        return env

    def run(self, *args: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(list(args), env=self.env(), capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n"
                               f"{result.stdout}\n{result.stderr}")
        return result

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.root / "log" / f"{name}.out", "ab")
        proc = subprocess.Popen(list(args), env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.procs[name] = proc
        return proc

    def _alive(self, name: str) -> bool:
        proc = self.procs[name]
        if proc.poll() is not None:
            out = (self.root / "log" / f"{name}.out").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{out}")
        return True

    # ------------------------------------------------------------------ set-up
    def start(self, timeout: float = 180) -> "SlurmCluster":
        started = time.monotonic()
        for sub in ("etc", "munge", "log", "run", "mysql", "state", "spool"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "munge").chmod(0o755)
        self.hardware = node_hardware()
        self._claim_system_conf()
        try:
            self._start_munge(timeout)
            self._start_mariadb(timeout)
            self._write_configs()
            self._start_slurmdbd(timeout)
            self._register_accounts(timeout)
            self._start_slurm(timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _claim_system_conf(self) -> None:
        if SYSTEM_CONF.is_symlink() and OURS in os.readlink(SYSTEM_CONF):
            SYSTEM_CONF.unlink()  # left behind by an earlier, killed test run
        if SYSTEM_CONF.exists() or SYSTEM_CONF.is_symlink():
            raise SlurmUnavailable(f"{SYSTEM_CONF} exists: this machine has its own SLURM")
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SYSTEM_CONF.symlink_to(self.conf)
        self._claimed = True

    def _release_system_conf(self) -> None:
        if getattr(self, "_claimed", False) and SYSTEM_CONF.is_symlink():
            if os.readlink(SYSTEM_CONF) == str(self.conf):
                SYSTEM_CONF.unlink()
        self._claimed = False

    def _start_munge(self, timeout: float) -> None:
        key = self.root / "munge/munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self._spawn(
            "munged", _which("munged"), "--foreground", "--force",
            f"--key-file={key}", f"--socket={self.munge_socket}",
            f"--pid-file={self.root / 'run/munged.pid'}",
            f"--log-file={self.root / 'log/munged.log'}",
            f"--seed-file={self.root / 'munge/munge.seed'}",
        )
        wait_until(lambda: self._alive("munged") and self.munge_socket.exists(), timeout,
                   "munged socket", log=self.root / "log/munged.out")

    def _start_mariadb(self, timeout: float) -> None:
        datadir = self.root / "mysql"
        result = subprocess.run(
            [_which("mariadb-install-db"), "--no-defaults", f"--datadir={datadir}", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            capture_output=True, text=True, timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed:\n{result.stdout}\n{result.stderr}")
        self._spawn(
            "mariadbd", _which("mariadbd"), "--no-defaults", f"--datadir={datadir}", "--user=root",
            f"--socket={self.root / 'run/mysql.sock'}", f"--port={self.ports['mysql']}",
            "--bind-address=127.0.0.1", f"--pid-file={self.root / 'run/mariadbd.pid'}",
            f"--log-error={self.root / 'log/mariadbd.log'}", "--skip-name-resolve",
            "--innodb-buffer-pool-size=64M", "--innodb-log-file-size=16M",
            "--innodb-lock-wait-timeout=900", "--innodb-flush-log-at-trx-commit=2",
        )

        def ready() -> bool:
            self._alive("mariadbd")
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", self.ports["mysql"])) == 0

        wait_until(ready, timeout, "mariadbd port", log=self.root / "log/mariadbd.log")

    def _write_configs(self) -> None:
        hw, root = self.hardware, self.root
        auth = [f"AuthType=auth/munge", f"AuthInfo=socket={self.munge_socket}"]
        dbd = root / "etc/slurmdbd.conf"
        dbd.write_text("\n".join([
            *auth,
            f"DbdHost={self.host}", "DbdAddr=127.0.0.1", f"DbdPort={self.ports['dbd']}",
            "SlurmUser=root", f"LogFile={root / 'log/slurmdbd.log'}",
            f"PidFile={root / 'run/slurmdbd.pid'}", "DebugLevel=info",
            "StorageType=accounting_storage/mysql", "StorageHost=127.0.0.1",
            f"StoragePort={self.ports['mysql']}", "StorageUser=root", "StorageLoc=slurm_acct_db",
        ]) + "\n")
        dbd.chmod(0o600)
        # Leave a little memory to the OS so the node registers with what it has.
        memory = max(hw["memory"] - 256, 512)
        if self.fake_gpus:
            memory = max(memory, DECLARED_MEMORY_MB)
        gres = f" Gres=gpu:{self.fake_gpus}" if self.fake_gpus else ""
        lines = [
            *auth,
            f"ClusterName={CLUSTER}", f"SlurmctldHost={self.host}(127.0.0.1)",
            f"SlurmctldPort={self.ports['ctld']}", f"SlurmdPort={self.ports['slurmd']}",
            "SlurmUser=root", "SlurmdUser=root", "CredType=cred/munge",
            f"StateSaveLocation={root / 'state'}", f"SlurmdSpoolDir={root / 'spool'}",
            f"SlurmctldPidFile={root / 'run/slurmctld.pid'}", f"SlurmdPidFile={root / 'run/slurmd.pid'}",
            f"SlurmctldLogFile={root / 'log/slurmctld.log'}", f"SlurmdLogFile={root / 'log/slurmd.log'}",
            f"PlugStackConfig={root / 'etc/plugstack.conf'}",
            # No cgroups in a container: plain /proc process tracking, no task binding.
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/linux", "JobAcctGatherFrequency=30",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core_Memory",
            "SchedulerType=sched/backfill", "MpiDefault=none", "ReturnToService=2",
            "AccountingStorageType=accounting_storage/slurmdbd",
            "AccountingStorageHost=127.0.0.1", f"AccountingStoragePort={self.ports['dbd']}",
            # The dbd connection authenticates through the munge socket named here.
            f"AccountingStoragePass={self.munge_socket}",
            "AccountingStorageEnforce=associations", "AccountingStoreFlags=job_comment",
            "JobCompType=jobcomp/none",
            # jobs stay visible to `scontrol show job` for an hour after they end
            "MinJobAge=3600", "KillWait=5", "InactiveLimit=0", "SlurmdTimeout=300",
            "SlurmctldDebug=info", "SlurmdDebug=info",
            *(["GresTypes=gpu", "AccountingStorageTRES=gres/gpu", "SlurmdParameters=config_overrides"]
              if self.fake_gpus else []),
            f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={hw['cpus']} Boards=1 "
            f"SocketsPerBoard={hw['sockets']} CoresPerSocket={hw['cores']} "
            f"ThreadsPerCore={hw['threads']} RealMemory={memory}{gres} State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
            *([f"PartitionName={CPU_PARTITION} Nodes=ALL MaxTime=INFINITE State=UP",
               f"PartitionName={GPU_PARTITION} Nodes=ALL MaxTime=INFINITE State=UP"] if self.fake_gpus else []),
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        (root / "etc/plugstack.conf").write_text("")
        if self.fake_gpus:
            # No GPU: the GRES's "devices" are character devices every machine has (nothing uses
            # them). SLURM 22.05's slurmd reports a count-only gpu GRES (no File=, even with
            # Flags=CountOnly) as 0 and the node goes INVAL, so the files are needed.
            devices = ["/dev/null", "/dev/zero", "/dev/full", "/dev/urandom"][: self.fake_gpus]
            (root / "etc/gres.conf").write_text(
                "".join(f"NodeName={self.host} Name=gpu File={dev}\n" for dev in devices))

    def _start_slurmdbd(self, timeout: float) -> None:
        self._spawn("slurmdbd", _which("slurmdbd"), "-D",
                    "-n", "0")  # -n: nice value; -D: foreground
        # slurmdbd reads slurmdbd.conf from the directory of SLURM_CONF.

        def ready() -> bool:
            self._alive("slurmdbd")
            return self.run("sacctmgr", "-n", "-P", "list", "cluster", timeout=20,
                            check=False).returncode == 0

        wait_until(ready, timeout, "slurmdbd", interval=0.5, log=self.root / "log/slurmdbd.log")

    def _register_accounts(self, timeout: float) -> None:
        self.run("sacctmgr", "-i", "add", "cluster", CLUSTER, timeout=timeout)
        self.run("sacctmgr", "-i", "add", "account", ACCOUNT, f"cluster={CLUSTER}",
                 "description=taxvlm tests", "organization=taxvlm", timeout=timeout)
        user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
        self.run("sacctmgr", "-i", "add", "user", user, f"account={ACCOUNT}",
                 f"cluster={CLUSTER}", timeout=timeout)

    def _start_slurm(self, timeout: float) -> None:
        self._spawn("slurmctld", _which("slurmctld"), "-D", "-i")
        wait_until(
            lambda: self._alive("slurmctld")
            and self.run("scontrol", "ping", check=False, timeout=10).stdout.count("UP") > 0,
            timeout, "slurmctld", interval=0.5, log=self.root / "log/slurmctld.log",
        )
        self._spawn("slurmd", _which("slurmd"), "-D", "-N", self.host)

        def idle() -> bool:
            self._alive("slurmd")
            # one line per node and partition
            states = set(self.run("sinfo", "-h", "-N", "-o", "%T", check=False, timeout=10).stdout.split())
            return bool(states) and states <= {"idle", "mixed", "allocated"}

        wait_until(idle, timeout, "node idle", interval=0.5, log=self.root / "log/slurmd.log")

    # ------------------------------------------------------------------ tear-down
    def stop(self, timeout: float = 30) -> None:
        for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        self._release_system_conf()

    # ------------------------------------------------------------------ queries
    def accounting(self) -> list[dict[str, str]]:
        """Every job the accounting database knows (main jobs only)."""
        fields = ["JobIDRaw", "JobName", "Account", "Partition", "State", "ExitCode", "AllocTRES",
                  "AllocCPUS", "Comment"]
        out = self.run("sacct", "-a", "-X", "-P", "-n", "--starttime", "now-1day",
                       f"--format={','.join(f + '%300' for f in fields)}", timeout=30).stdout
        return [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line]

    def job_details(self, job_id: str) -> dict[str, str]:
        """`scontrol show job` of one job as {field: value} (kept MinJobAge after it ends)."""
        out = self.run("scontrol", "-o", "show", "job", job_id, timeout=30).stdout
        return dict(item.split("=", 1) for item in out.split() if "=" in item)


if __name__ == "__main__":
    directory = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/taxvlm-slurm")
    ensure_installed()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    cluster = SlurmCluster(directory, fake_gpus=int(os.environ.get("FAKE_GPUS", 0))).start()
    print(f"SLURM up in {cluster.startup_seconds:.1f}s; export SLURM_CONF={cluster.conf}",
          flush=True)
    try:
        while True:
            time.sleep(3600)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        cluster.stop()
