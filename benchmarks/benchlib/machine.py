"""The machine under the benchmark: the processes the harness starts and stops, what /proc
says about them (CPU seconds, RSS, descriptors) and about everything else running (the
"other load" that marks a figure noisy), free loopback ports, and the CPU pinning plan.

It owns no proxy and no scenario: targets.py, scenarios.py and run.py build on it. Every
process it starts runs in a process group of its own and dies with this script
(PR_SET_PDEATHSIG), and only processes it started are ever signalled.
"""
import ctypes
import os
import re
import resource
import signal
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
BUILD = ROOT / "build" / "bench"
LOOPBACK = "127.0.0.1"

STOP_TIMEOUT_S = 5  # SIGTERM, then SIGKILL after this
OTHER_LOAD_WARN = 0.1  # CPUs used by processes not ours: flag the figure as noisy
NOFILE_HARD = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
if NOFILE_HARD == resource.RLIM_INFINITY:
    NOFILE_HARD = 1 << 20

MIB = 1 << 20
GIB = 1 << 30


def log(msg):
    print(msg, flush=True)


class BenchError(Exception):
    """A failure that ends the run (a target that does not start, a missing tool)."""


# ---- processes -----------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def child_setup():
    # If this script dies without cleaning up (SIGKILL), the kernel kills the child too.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    # Thousands of idle connections (the idle-conns scenario) need descriptors: the soft
    # open-files limit goes up to the hard one (20000 here) in every child.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass


def pinned(cpus, argv):
    return ["taskset", "-c", cpus] + [str(a) for a in argv] if cpus else [str(a) for a in argv]


class Procs:
    """Every long-lived process this run started, each in its own process group, so that
    stopping one also stops the workers it forked (nginx). Nothing else is ever killed."""

    def __init__(self):
        self.live = []

    def start(self, name, argv, log_path, pipe_stdout=False):
        out = open(log_path, "ab")
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE if pipe_stdout else out, stderr=out,
                                 start_new_session=True, preexec_fn=child_setup)
        finally:
            out.close()
        p.bench_name = name
        p.bench_log = log_path
        self.live.append(p)
        return p

    def stop(self, p):
        if p not in self.live:
            return
        self.live.remove(p)
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, STOP_TIMEOUT_S)):
            try:
                os.killpg(p.pid, sig)  # the group we created for it (start_new_session)
            except ProcessLookupError:
                break
            try:
                p.wait(timeout=wait)
                # The leader is gone; make sure its forked workers are too.
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                break
            except subprocess.TimeoutExpired:
                continue
        if p.stdout is not None:
            p.stdout.close()

    def stop_all(self):
        for p in list(reversed(self.live)):
            self.stop(p)


def run_client(argv, timeout):
    """Runs a load-generator client to completion (bounded by TIMEOUT); returns its
    key=value output line as a dict, or raises BenchError with its stderr."""
    argv = [str(a) for a in argv]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True,
                         preexec_fn=child_setup)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        tool = next((Path(x).name + " " + argv[i + 1] for i, x in enumerate(argv)
                     if x.startswith(str(BUILD))), argv[0])
        raise BenchError(f"{tool} timed out after {timeout:.0f} s")
    except BaseException:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        raise
    if p.returncode != 0:
        raise BenchError((err.strip() or out.strip() or f"exit {p.returncode}").splitlines()[-1])
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)


def group_cpu_seconds(pgids):
    """{pgid: user + system CPU seconds of every process in that process group} (a proxy
    and the workers it forked, a backend). Read from /proc before and after a measurement.
    A process's reaped children count too (cutime, cstime): a worker that exits during the
    measurement (the old workers after a reload) moves its CPU time to its parent's then,
    instead of vanishing from the sum."""
    tick = os.sysconf("SC_CLK_TCK")
    total = dict.fromkeys(pgids, 0)
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is field 3 (state): pgrp is field 5, utime 14, stime 15, cutime 16,
        # cstime 17.
        if int(fields[2]) in total:
            total[int(fields[2])] += sum(int(x) for x in fields[11:15])
    return {g: t / tick for g, t in total.items()}


def group_memory(pgid):
    """{pid: (VmRSS, VmHWM, open descriptors)} for every process in process group PGID (a
    proxy and the workers it forked), sizes in bytes. Read before and after a measurement."""
    out = {}
    if pgid is None:
        return out
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[2]) != pgid:
                    continue
            rss = hwm = 0
            with open(f"/proc/{d}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss = int(line.split()[1]) * 1024
                    elif line.startswith("VmHWM:"):
                        hwm = int(line.split()[1]) * 1024
            out[int(d)] = (rss, hwm, len(os.listdir(f"/proc/{d}/fd")))
        except (OSError, ValueError, IndexError):
            continue  # exited meanwhile
    return out


def reset_peak_rss(pgid):
    """Resets VmHWM to the current VmRSS in every process of PGID (`echo 5 >
    /proc/PID/clear_refs`, Linux 4.0+), so the peak measured is the measurement's own."""
    for pid in group_memory(pgid):
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError as e:
            raise BenchError(f"cannot reset the peak RSS of pid {pid}: {e}")


def machine_cpu_seconds():
    """User + system CPU seconds of the whole machine since boot (softirq time, which
    loopback traffic makes a lot of, is in neither)."""
    with open("/proc/stat") as f:
        v = f.readline().split()
    return (int(v[1]) + int(v[2]) + int(v[3])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds():
    """CPU seconds of this script and of the children it has reaped (the clients)."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def free_port():
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_port(port, p, deadline):
    """Polls until PORT accepts a connection; False if process P exits or time runs out."""
    while time.monotonic() < deadline:
        if p.poll() is not None:
            return False
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def wait_log(path, word, p, deadline):
    while time.monotonic() < deadline:
        if p.poll() is not None:
            return False
        try:
            if word in Path(path).read_text(errors="replace"):
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def log_tail(path, n=15):
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + l for l in lines[-n:]) or "    (empty log)"


# ---- CPU time and the other processes' load ----------------------------------------------

class cpu_meter:
    """Measures, while the block runs, the CPU seconds of the target's processes (None for
    direct) and the load other processes put on the machine, in CPUs: everything busy that
    is neither the target, its backends, this script nor its clients. The box may be shared
    (someone's `make test`); the report shows that load so a noisy figure can be told."""

    def __init__(self, ctx, target, backend_pgids=None):
        self.proxy = target.pgid()
        if backend_pgids is None:
            backend_pgids = ctx.backend_pgids[target.name]
        self.pgids = [g for g in [self.proxy] + backend_pgids if g]
        self.seconds = self.other_load = None

    def __enter__(self):
        self.t0 = (time.monotonic(), machine_cpu_seconds(), own_cpu_seconds(),
                   group_cpu_seconds(self.pgids))
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            return
        wall, machine, own = (time.monotonic() - self.t0[0], machine_cpu_seconds() - self.t0[1],
                              own_cpu_seconds() - self.t0[2])
        groups = group_cpu_seconds(self.pgids)
        used = {g: groups[g] - self.t0[3][g] for g in self.pgids}
        if self.proxy:
            self.seconds = used[self.proxy]
        self.other_load = max(0.0, machine - own - sum(used.values())) / wall


# ---- the machine's state: CPU pinning, TIME_WAIT ---------------------------------------

def pin_plan(workers):
    """Which CPUs the proxy and the load (clients + backends) may use. The proxy gets
    cores of its own when the machine has room for its workers plus one for the load;
    otherwise everything shares all cores. Same plan for every target. README explains."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= workers + 1:
        fmt = lambda cs: ",".join(map(str, cs))
        return {"proxy": fmt(cpus[:workers]), "load": fmt(cpus[workers:]),
                "text": f"proxy on CPU {fmt(cpus[:workers])}, load (clients and backends) on "
                        f"CPU {fmt(cpus[workers:])}"}
    allc = ",".join(map(str, cpus))
    return {"proxy": allc, "load": allc,
            "text": f"everything shares CPUs {allc} (too few cores to give {workers} "
                    "worker(s) and the load cores of their own)"}


def time_wait():
    """(sockets in TIME_WAIT in this network namespace, the kernel's cap on them)."""
    tw = 0
    with open("/proc/net/sockstat") as f:
        for line in f:
            m = re.match(r"TCP:.* tw (\d+)", line)
            if m:
                tw = int(m.group(1))
    with open("/proc/sys/net/ipv4/tcp_max_tw_buckets") as f:
        return tw, int(f.read())
