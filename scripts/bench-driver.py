#!/usr/bin/env python3
"""Side-by-side FTP server benchmark driver.

Called by scripts/bench, which installs the peer servers and builds ferroftp
first; this script only uses what is already there.  Python 3 standard
library only.

For every workload and every selected server it starts the server on a free
loopback port (fresh process per workload, so one workload cannot skew the
next), runs the client side, stops the server, and finally prints a table
and writes it as markdown.

Everything here talks to 127.0.0.1 only, every client step has a timeout and
every loop is bounded by a deadline.
"""

import argparse
import datetime
import json
import multiprocessing
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HOST = "127.0.0.1"
GIB = 1 << 30
MIB = 1 << 20
KIB = 1 << 10
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
SOCKBUF = 4 * MIB
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)

ALL_SERVERS = ["ferroftp", "vsftpd", "proftpd", "pure-ftpd", "unftp"]
PEERS = [s for s in ALL_SERVERS if s != "ferroftp"]
# Rows only ferroftp has: a setting no peer offers (their cells show "-").
FERROFTP_ONLY = {"storsync", "s3retr", "s3stor", "s3list"}
# Rows on the S3 backend, against a Garage node the driver starts.
S3_WORKLOADS = {"s3retr", "s3stor", "s3list"}
ALL_WORKLOADS = ["retr", "stor", "storsync", "tlsretr", "tlsstor", "small", "smallcli", "smallraw", "parallel", "list", "login",
                 "idle", "s3retr", "s3stor", "s3list"]

# Size presets.  Every value can be overridden with FERROFTP_BENCH_<KEY>
# (e.g. FERROFTP_BENCH_BIG_MIB=256).
PRESETS = {
    "full": dict(big_mib=1024, retr_runs=5, stor_mib=512, stor_runs=5,
                 small_files=300, small_bytes=4096, small_runs=3, par_clients=32, par_mib=64, par_runs=5,
                 list_entries=50000, list_runs=3, login_workers=8, login_seconds=5.0,
                 idle_sessions=500, s3_mib=256, s3_list_entries=2000),
    "medium": dict(big_mib=256, retr_runs=3, stor_mib=128, stor_runs=3,
                   small_files=300, small_bytes=4096, small_runs=3, par_clients=32, par_mib=16, par_runs=3,
                   list_entries=50000, list_runs=3, login_workers=8, login_seconds=5.0,
                   idle_sessions=500, s3_mib=64, s3_list_entries=1000),
    "tiny": dict(big_mib=1, retr_runs=3, stor_mib=1, stor_runs=3,
                 small_files=10, small_bytes=4096, small_runs=3, par_clients=2, par_mib=1, par_runs=3,
                 list_entries=500, list_runs=3, login_workers=2, login_seconds=1.0,
                 idle_sessions=20, s3_mib=1, s3_list_entries=20),
}


class BenchError(Exception):
    """A workload failed for one server; the message goes into the notes."""


class Terminated(BaseException):
    pass


def log(msg):
    print(msg, flush=True)


# --------------------------------------------------------------------------
# process tree memory


def _children_map():
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d, "rb") as f:
                s = f.read()
        except OSError:
            continue
        r = s.rfind(b")")
        fields = s[r + 2:].split()
        try:
            ppid = int(fields[1])
        except (IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    return children


def proc_tree(root):
    """The pid root and all its descendants that exist right now."""
    children = _children_map()
    out, stack = [root], [root]
    while stack:
        p = stack.pop()
        for c in children.get(p, ()):
            out.append(c)
            stack.append(c)
    return out


def start_time(pid):
    """Kernel start time of pid (clock ticks since boot), None if gone.
    (pid, start_time) names a process safely: a pid can be reused."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            s = f.read()
        return int(s[s.rfind(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def tree_rss_kib(root):
    total = 0
    for pid in proc_tree(root):
        try:
            with open("/proc/%d/statm" % pid) as f:
                total += int(f.read().split()[1]) * PAGE_KIB
        except (OSError, ValueError, IndexError):
            pass
    return total


def tree_pss_kib(root):
    total = 0
    for pid in proc_tree(root):
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except (OSError, ValueError, IndexError):
            pass
    return total


CLK_TCK = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root):
    """user+system CPU of the live tree plus what the root has reaped."""
    total = 0
    for pid in proc_tree(root):
        try:
            with open("/proc/%d/stat" % pid, "rb") as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rfind(b")") + 2:].split()
        # fields[11..14] = utime stime cutime cstime (stat fields 14..17)
        total += int(fields[11]) + int(fields[12])
        if pid == root:
            total += int(fields[13]) + int(fields[14])
    return total / CLK_TCK


def tree_cpu_seconds_live(root):
    """CPU time of the live tree's threads, in nanoseconds precision
    (/proc/PID/task/TID/schedstat), for spans too short for clock ticks."""
    total = 0
    for pid in proc_tree(root):
        try:
            tids = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue
        for tid in tids:
            try:
                with open("/proc/%d/task/%s/schedstat" % (pid, tid), "rb") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
    return total / 1e9


def tree_cpu_seconds(root):
    """CPU time of the server's process tree in seconds, at clock-tick
    precision, threads that ended and children the tree reaped included
    (utime, stime, cutime and cstime of /proc/PID/stat): a download's
    send thread ends before its 226, and a forking server's session
    process may end before the sample."""
    ticks = 0
    for pid in proc_tree(root):
        try:
            with open("/proc/%d/stat" % pid, "rb") as f:
                s = f.read()
            fields = s[s.rfind(b")") + 2:].split()
            ticks += sum(int(x) for x in fields[11:15])
        except (OSError, ValueError, IndexError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Server and client CPU over the timed parts of a workload, for the
    note's "CPU per unit": on two cores shared by client and server, a
    throughput row is bounded by their sum, so the figure says how far a
    row can move and which side holds it. The client is this process
    (all its threads) and the children it waited for (the FTPS client)."""

    def __init__(self, srv, live_threads=False):
        """live_threads: the server's live threads only, at nanosecond
        precision (schedstat), for spans too short for clock ticks and
        servers whose threads all outlive them (the small-file rows)."""
        self.root = srv.proc.pid
        self.server_now = tree_cpu_seconds_live if live_threads else tree_cpu_seconds
        self.server = self.client = 0.0

    @staticmethod
    def _client_now():
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    def start(self):
        self.server -= self.server_now(self.root)
        self.client -= self._client_now()

    def stop(self, settle=0.0):
        """settle: seconds to wait first, when the sessions just ended, so
        a forking server has reaped their processes into its counts."""
        if settle:
            time.sleep(settle)
        self.server += self.server_now(self.root)
        self.client += self._client_now()

    def per(self, units, unit):
        """"CPU per GiB: server 0.31 s, client 0.40 s" for units of unit."""
        if units <= 0:
            return "CPU: no units"
        return "CPU per %s: server %.2f s, client %.2f s" % (unit, self.server / units, self.client / units)

    def per_file(self, files):
        """"CPU per file: server 113 us, client 137 us"."""
        return "CPU per file: server %.0f us, client %.0f us" % (
            self.server / files * 1e6, self.client / files * 1e6)


# Scheduler autogroups, which a run as root turns off and back on after.
# With autogroups the kernel shares the CPU between sessions (setsid)
# first and between threads only inside a session. vsftpd calls setsid
# for every client session, the other servers and the benchmark client
# do not, so on two busy cores 32 vsftpd sessions weighed 32 shares
# against the client's one while ferroftp's threads together weighed
# one: the 32-client row measured the session layout as much as the
# servers. Measured, 16 runs each, both servers in sessions of their own:
# autogroups on, ferroftp 4,300-7,070 MiB/s and vsftpd 4,100-5,780;
# off, 6,740-7,840 and 5,820-7,330, the machine 89-95% busy either way.
# A server in production runs in a cgroup of its own, where autogroups
# do not apply, with its clients on other machines.
AUTOGROUP = "/proc/sys/kernel/sched_autogroup_enabled"


def read_autogroup():
    """The autogroup sysctl's value, None when this kernel has none."""
    try:
        with open(AUTOGROUP) as f:
            return f.read().strip()
    except OSError:
        return None


def write_autogroup(value):
    """Sets the autogroup sysctl; False when it cannot be (not root)."""
    try:
        with open(AUTOGROUP, "w") as f:
            f.write(value)
        return True
    except OSError:
        return False


def machine_cpu_ticks():
    """(busy, softirq, total) clock ticks of all cores from /proc/stat.
    Machine-wide, because on loopback the kernel runs much of one side's
    TCP work in the other side's context or in softirq time that no
    process is charged for, so per-process CPU times do not add up."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    busy = user + nice + system + irq + softirq + steal
    return busy, softirq, busy + idle + iowait


def busy_note(before, after):
    """The share of the machine's CPU used between two machine_cpu_ticks()."""
    if not before or not after or after[2] <= before[2]:
        return None
    total = after[2] - before[2]
    return "machine CPU busy %.0f%% (softirq %.0f%%)" % (
        100.0 * (after[0] - before[0]) / total, 100.0 * (after[1] - before[1]) / total)


class PeakSampler(threading.Thread):
    """Samples the RSS of a process tree every `interval` seconds."""

    def __init__(self, root, interval=0.02):
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peak = tree_rss_kib(root)
        self._stop_ev = threading.Event()

    def run(self):
        while not self._stop_ev.is_set():
            self.peak = max(self.peak, tree_rss_kib(self.root))
            self._stop_ev.wait(self.interval)

    def stop(self):
        self._stop_ev.set()
        self.join(5)
        self.peak = max(self.peak, tree_rss_kib(self.root))
        return self.peak


# --------------------------------------------------------------------------
# minimal FTP control client (raw sockets, so nothing hides a slow server)


class Ctl:
    def __init__(self, port, timeout=30.0):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rf = self.sock.makefile("rb")

    def resp(self):
        line = self.rf.readline(8192)
        if not line:
            raise BenchError("control connection closed by server")
        code = line[:3]
        if line[3:4] == b"-":
            for _ in range(10000):
                nxt = self.rf.readline(8192)
                if not nxt:
                    raise BenchError("control connection closed in multi-line reply")
                if nxt[:3] == code and nxt[3:4] == b" ":
                    break
        try:
            return int(code), line.decode("latin-1").strip()
        except ValueError:
            raise BenchError("bad reply %r" % line[:80])

    def send(self, text):
        self.sock.sendall(text.encode("latin-1") + b"\r\n")

    def cmd(self, text, ok):
        self.send(text)
        code, line = self.resp()
        if code not in ok:
            shown = "PASS ****" if text.startswith("PASS") else text
            raise BenchError("%s -> %s" % (shown, line[:120]))
        return code, line

    def login(self, user, password):
        code, line = self.resp()
        if code != 220:
            raise BenchError("banner: %s" % line[:120])
        code, _ = self.cmd("USER " + user, (230, 331))
        if code == 331:
            self.cmd("PASS " + password, (230,))

    def pasv(self):
        """Returns the (host, port) to connect the data socket to."""
        self.send("PASV")
        code, line = self.resp()
        if code == 227:
            m = re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)", line)
            if not m:
                raise BenchError("unparsable PASV reply: %s" % line[:120])
            n = [int(x) for x in m.groups()]
            host = "%d.%d.%d.%d" % tuple(n[:4])
            if host == "0.0.0.0":
                host = HOST
            if host != HOST:
                raise BenchError("PASV points off loopback: %s" % host)
            return host, n[4] * 256 + n[5]
        code, line = self.cmd("EPSV", (229,))
        m = re.search(r"\(\|\|\|(\d+)\|\)", line)
        if not m:
            raise BenchError("unparsable EPSV reply: %s" % line[:120])
        return HOST, int(m.group(1))

    def quit(self):
        try:
            self.send("QUIT")
            self.resp()
        except (OSError, BenchError):
            pass
        self.close()

    def close(self):
        try:
            self.rf.close()
            self.sock.close()
        except OSError:
            pass


def _set_buf(sock, force_opt, opt, size):
    try:
        sock.setsockopt(socket.SOL_SOCKET, force_opt, size)
    except (OSError, PermissionError):
        sock.setsockopt(socket.SOL_SOCKET, opt, size)


def data_socket(addr, timeout, rcv=True):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcv:
        _set_buf(s, SO_RCVBUFFORCE, socket.SO_RCVBUF, SOCKBUF)
    else:
        _set_buf(s, SO_SNDBUFFORCE, socket.SO_SNDBUF, SOCKBUF)
    s.settimeout(timeout)
    s.connect(addr)
    return s


def retr_into(ctl, path, expect, deadline, buf):
    """RETR path over an already logged-in control connection; returns bytes."""
    ctl.cmd("TYPE I", (200,))
    addr = ctl.pasv()
    ds = data_socket(addr, 30)
    try:
        ctl.cmd("RETR " + path, (125, 150))
        mv = memoryview(buf)
        total = 0
        while True:
            n = ds.recv_into(mv)
            if not n:
                break
            total += n
            if time.monotonic() > deadline:
                raise BenchError("RETR timed out after %d bytes" % total)
    finally:
        ds.close()
    code, line = ctl.resp()
    if code not in (226, 250):
        raise BenchError("RETR end: %s" % line[:120])
    if total != expect:
        raise BenchError("RETR %s: got %d bytes, expected %d" % (path, total, expect))
    return total


# --------------------------------------------------------------------------
# servers


def _port_pool():
    """Ports outside the kernel's ephemeral range, so a listening port picked
    now is not taken a moment later as the local port of one of the
    thousands of client and data connections a workload opens."""
    lo, hi = 32768, 60999
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        pass
    if lo - 1 - 10000 >= 1000:
        return 10000, lo - 1
    if 65535 - (hi + 1) >= 1000:
        return hi + 1, 65535
    return None


def free_port():
    """A loopback TCP port that nothing is bound to right now."""
    import random
    pool = _port_pool()
    for _ in range(200 if pool else 0):
        port = random.randint(*pool)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((HOST, port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def read_flags(path, subst):
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            # "option value" -> two arguments; "--option=value" -> one
            for part in line.split(None, 1):
                out.append(render(part, subst))
    return out


def render(text, subst):
    for k, v in subst.items():
        text = text.replace("@%s@" % k, str(v))
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise BenchError("unfilled placeholders %s" % sorted(set(left)))
    return text


class ServerDef:
    """How to start one server.  prepare() returns (argv, env)."""

    def __init__(self, name, ctx):
        self.name, self.ctx = name, ctx
        self.user, self.password = "bench", "bench"

    def binary(self):
        raise NotImplementedError

    def available(self):
        b = self.binary()
        if not b or not os.path.exists(b):
            return "not installed (%s missing)" % (b or self.name)
        return None

    def version(self):
        return "?"

    def fallback(self, error):
        """Called when the server did not start; returns a note when a second
        try with other settings makes sense."""
        return None

    def prepare(self, port):
        raise NotImplementedError


def _run_quiet(argv, env=None, stdin=None):
    try:
        p = subprocess.run(argv, env=env, stdin=stdin, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=10)
        return p.stdout.decode("utf-8", "replace")
    except (OSError, subprocess.SubprocessError):
        return ""


class Ferroftp(ServerDef):
    def binary(self):
        return self.ctx["ferroftp_bin"] or os.path.join(target_dir(self.ctx), "release", "ferroftp")

    def version(self):
        out = _run_quiet([self.binary(), "--version"]).strip().splitlines()
        ver = out[0] if out else "?"
        rev = _run_quiet(["git", "-C", self.ctx["repo"], "rev-parse", "--short", "HEAD"]).strip()
        dirty = _run_quiet(["git", "-C", self.ctx["repo"], "status", "--porcelain",
                            "--untracked-files=no"]).strip()
        if rev and re.fullmatch(r"[0-9a-f]+", rev):
            ver += " (git %s%s)" % (rev, "+changes" if dirty else "")
        if "/target/release/" not in self.binary():
            ver += " [binary %s]" % self.binary()
        return ver

    use_config = True
    # Set by the driver before each start: "storsync" runs with
    # bench/ferroftp-durable.toml (the default durability), every other
    # workload with bench/ferroftp.toml.
    workload = None

    def prepare(self, port):
        argv = [self.binary(), "serve"]
        if self.use_config:
            name = "ferroftp-durable.toml" if self.workload == "storsync" else "ferroftp.toml"
            argv += ["--config", os.path.join(self.ctx["bench"], name)]
        argv += ["--listen", "%s:%d" % (HOST, port), "--user", "bench:bench",
                 "--tls-cert", self.ctx["tls_cert"], "--tls-key", self.ctx["tls_key"]]
        if self.workload in S3_WORKLOADS:
            g = garage(self.ctx)
            env = dict(os.environ, AWS_ACCESS_KEY_ID=g["AWS_ACCESS_KEY_ID"],
                       AWS_SECRET_ACCESS_KEY=g["AWS_SECRET_ACCESS_KEY"])
            return argv + ["--storage", "s3", "--s3-endpoint", g["S3_ENDPOINT"],
                           "--s3-bucket", g["S3_BUCKET"], "--s3-region", g["S3_REGION"]], env
        return argv + ["--root", self.ctx["data"]], None

    def fallback(self, error):
        """A binary older or newer than bench/ferroftp.toml may reject it:
        then run with the plain command line (default session limits)."""
        if self.use_config and ("ferroftp.toml" in error or "unknown field" in error
                                or "config" in error.lower()):
            self.use_config = False
            return ("started without bench/ferroftp.toml, which this binary rejected "
                    "(default session limits apply)")
        return None


class Vsftpd(ServerDef):
    def __init__(self, name, ctx):
        super().__init__(name, ctx)
        self.user = ctx["sys_user"]

    def binary(self):
        return shutil.which("vsftpd") or "/usr/sbin/vsftpd"

    def available(self):
        return super().available() or _sys_user_problem(self.ctx)

    def version(self):
        out = _run_quiet(["dpkg-query", "-W", "-f", "${Version}", "vsftpd"])
        return "vsftpd " + out.strip() if out else "?"

    def prepare(self, port):
        ctx = self.ctx
        empty = os.path.join(ctx["run"], "vsftpd-empty")
        os.makedirs(empty, exist_ok=True)
        os.chmod(empty, 0o555)
        # FTPS offered, not required; data connections must resume the
        # control session (vsftpd's default, as ferroftp's).
        tls = "\n".join(["ssl_enable=YES", "allow_anon_ssl=NO", "force_local_logins_ssl=NO",
                         "force_local_data_ssl=NO", "require_ssl_reuse=YES",
                         "rsa_cert_file=" + ctx["tls_cert"], "rsa_private_key_file=" + ctx["tls_key"]])
        subst = dict(PORT=port, ROOT=ctx["data"], PAM_SERVICE=ctx["pam_service"],
                     EMPTY_DIR=empty, LOG_DIR=ctx["logs"], EXTRA=tls)
        with open(os.path.join(ctx["bench"], "vsftpd.conf.in")) as f:
            conf = render(f.read(), subst)
        path = os.path.join(ctx["run"], "vsftpd.conf")
        with open(path, "w") as f:
            f.write(conf)
        os.chmod(path, 0o600)
        return [self.binary(), path], None


def _peer_lib_env(ctx):
    env = dict(os.environ)
    libdirs = []
    base = os.path.join(ctx["cache"], "root", "usr", "lib")
    if os.path.isdir(base):
        for d in sorted(os.listdir(base)):
            if d.endswith("-linux-gnu"):
                libdirs.append(os.path.join(base, d))
    if env.get("LD_LIBRARY_PATH"):
        libdirs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = ":".join(libdirs)
    return env


def _sys_user_problem(ctx):
    try:
        import pwd
        pw = pwd.getpwnam(ctx["sys_user"])
    except KeyError:
        return "system user %s missing (scripts/bench creates it)" % ctx["sys_user"]
    if os.path.realpath(pw.pw_dir) != os.path.realpath(ctx["data"]):
        return "home of %s is %s, not the data directory" % (ctx["sys_user"], pw.pw_dir)
    if os.geteuid() != 0:
        return "needs root"
    return None


class Proftpd(ServerDef):
    def __init__(self, name, ctx):
        super().__init__(name, ctx)
        self.user = ctx["sys_user"]

    def binary(self):
        return os.path.join(self.ctx["cache"], "root", "usr", "sbin", "proftpd")

    def available(self):
        return super().available() or _sys_user_problem(self.ctx)

    def version(self):
        out = _run_quiet([self.binary(), "-v"], env=_peer_lib_env(self.ctx)).strip()
        return out.splitlines()[-1].strip() if out else "?"

    def prepare(self, port):
        ctx = self.ctx
        tls = ""
        modules = os.path.join(ctx["cache"], "root", "usr", "lib", "proftpd")
        if os.path.exists(os.path.join(modules, "mod_tls.so")):
            # mod_tls from proftpd-mod-crypto; FTPS offered, not required;
            # data sessions must resume (ProFTPD's default).
            tls = "\n".join(["ModulePath " + modules, "LoadModule mod_tls.c", "TLSEngine on",
                             "TLSProtocol TLSv1.2 TLSv1.3", "TLSRequired off",
                             "TLSRSACertificateFile " + ctx["tls_cert"],
                             "TLSRSACertificateKeyFile " + ctx["tls_key"],
                             "TLSLog " + os.path.join(ctx["logs"], "proftpd-tls.log")])
        subst = dict(PORT=port, ROOT=ctx["data"], PAM_SERVICE=ctx["pam_service"],
                     RUN_DIR=ctx["run"], LOG_DIR=ctx["logs"], EXTRA=tls)
        with open(os.path.join(ctx["bench"], "proftpd.conf.in")) as f:
            conf = render(f.read(), subst)
        path = os.path.join(ctx["run"], "proftpd.conf")
        with open(path, "w") as f:
            f.write(conf)
        os.chmod(path, 0o644)
        return [self.binary(), "-n", "-q", "-c", path], _peer_lib_env(ctx)


class PureFtpd(ServerDef):
    def binary(self):
        return os.path.join(self.ctx["cache"], "root", "usr", "sbin", "pure-ftpd")

    def version(self):
        out = _run_quiet([self.binary(), "--help"], env=_peer_lib_env(self.ctx))
        m = re.search(r"pure-ftpd v[\w.]+", out)
        return m.group(0) if m else "?"

    def pure_pw(self):
        return os.path.join(self.ctx["cache"], "root", "usr", "bin", "pure-pw")

    def available(self):
        if not os.path.exists(self.pure_pw()):
            return "not installed (%s missing)" % self.pure_pw()
        if os.geteuid() != 0:
            return "needs root"
        try:
            import pwd
            pwd.getpwnam(self.ctx["sys_user"])
        except KeyError:
            return "system user %s missing (scripts/bench creates it)" % self.ctx["sys_user"]
        return super().available()

    def prepare(self, port):
        ctx = self.ctx
        import pwd
        pw = pwd.getpwnam(ctx["sys_user"])
        hashed = sha512_crypt("bench")
        text = os.path.join(ctx["run"], "pureftpd.passwd")
        with open(text, "w") as f:
            # login:hash:uid:gid:gecos:home/./ then 12 empty quota/ratio fields
            f.write("bench:%s:%d:%d::%s/./%s\n" % (hashed, pw.pw_uid, pw.pw_gid,
                                                  ctx["data"], ":" * 12))
        os.chmod(text, 0o600)
        pdb = os.path.join(ctx["run"], "pureftpd.pdb")
        p = subprocess.run([self.pure_pw(), "mkdb", pdb, "-f", text], env=_peer_lib_env(ctx),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        if p.returncode != 0:
            raise BenchError("pure-pw mkdb failed: %s" % p.stdout.decode(errors="replace")[:200])
        flags = read_flags(os.path.join(ctx["bench"], "pure-ftpd.flags"),
                           dict(PORT=port, RUN_DIR=ctx["run"]))
        # FTPS offered, not required.
        flags += ["--tls", "1", "--certfile", "%s,%s" % (ctx["tls_cert"], ctx["tls_key"])]
        return [self.binary()] + flags, _peer_lib_env(ctx)


def sha512_crypt(password):
    out = subprocess.run(["openssl", "passwd", "-6", password], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, timeout=10).stdout.decode().strip()
    if not out.startswith("$6$"):
        raise BenchError("openssl passwd -6 failed")
    return out


class Unftp(ServerDef):
    def binary(self):
        return os.path.join(self.ctx["cache"], "unftp", "bin", "unftp")

    def version(self):
        out = _run_quiet([self.binary(), "--version"]).strip()
        return out.splitlines()[0] if out else "?"

    def prepare(self, port):
        ctx = self.ctx
        with open(os.path.join(ctx["run"], "unftp-users.json"), "w") as f:
            json.dump([{"username": "bench", "password": "bench"}], f)
        flags = read_flags(os.path.join(ctx["bench"], "unftp.flags"),
                           dict(PORT=port, HTTP_PORT=free_port(), ROOT=ctx["data"],
                                RUN_DIR=ctx["run"]))
        flags += ["--ftps-certs-file=" + ctx["tls_cert"], "--ftps-key-file=" + ctx["tls_key"]]
        return [self.binary()] + flags, None


SERVER_CLASSES = {"ferroftp": Ferroftp, "vsftpd": Vsftpd, "proftpd": Proftpd,
                  "pure-ftpd": PureFtpd, "unftp": Unftp}


class Running:
    """One started server process (and its process tree)."""

    def __init__(self, sdef, tag):
        self.sdef, self.tag = sdef, tag
        ctx = sdef.ctx
        self.port = free_port()
        argv, env = sdef.prepare(self.port)
        self.log_path = os.path.join(ctx["logs"], "%s-%s.log" % (sdef.name, tag))
        self.logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=ctx["run"])
        _pids_add(ctx, self.proc.pid)

    def log_tail(self, n=3):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read()[-4000:].decode("utf-8", "replace").strip().splitlines()
            return " | ".join(l.strip() for l in lines[-n:])
        except OSError:
            return ""

    def wait_ready(self, timeout=20.0):
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise BenchError("exited with code %s at start: %s" % (rc, self.log_tail()))
            try:
                with socket.create_connection((HOST, self.port), timeout=2) as s:
                    s.settimeout(5)
                    banner = s.recv(4096)
                    if banner[:3] == b"220":
                        try:
                            s.sendall(b"QUIT\r\n")
                            s.recv(4096)
                        except OSError:
                            pass
                        return
                    last = "banner %r" % banner[:60]
            except OSError as e:
                last = str(e)
            time.sleep(0.1)
        raise BenchError("not ready after %.0f s (%s): %s" % (timeout, last, self.log_tail()))

    def settle(self, seconds=1.0):
        """Gives session processes of earlier connections time to go away."""
        time.sleep(seconds)

    def stop(self):
        """Stops the server and every process of its tree: the process group
        (the server was started as a session/group leader) and, for session
        processes that left the group, each one by (pid, start time), so a
        reused pid is never signalled."""
        pid = self.proc.pid
        tree = []
        if self.proc.poll() is None:
            tree = [(p, start_time(p)) for p in proc_tree(pid) if p != pid]

        def signal_tree(sig):
            if self.proc.poll() is None:
                try:
                    os.killpg(pid, sig)
                except ProcessLookupError:
                    pass
            for p, st in tree:
                if st is not None and start_time(p) == st:
                    try:
                        os.kill(p, sig)
                    except ProcessLookupError:
                        pass

        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            signal_tree(sig)
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # session processes re-parented away from the server may linger
        signal_tree(signal.SIGKILL)
        self.logf.close()
        _pids_remove(self.sdef.ctx, pid)


_PIDS_LOCK = threading.Lock()


def _pids_file(ctx):
    return os.path.join(ctx["run"], "server-pids")


def _pids_add(ctx, pid):
    # "pid starttime": scripts/bench's exit trap signals the group only while
    # that same process is still alive
    with _PIDS_LOCK, open(_pids_file(ctx), "a") as f:
        f.write("%d %s\n" % (pid, start_time(pid)))


def _pids_remove(ctx, pid):
    with _PIDS_LOCK:
        try:
            with open(_pids_file(ctx)) as f:
                pids = [l.strip() for l in f if l.strip() and l.split()[0] != str(pid)]
        except OSError:
            pids = []
        with open(_pids_file(ctx), "w") as f:
            f.write("".join(p + "\n" for p in pids))


# --------------------------------------------------------------------------
# data directory


def make_data(ctx, cfg):
    data = ctx["data"]
    os.makedirs(data, exist_ok=True)
    os.chmod(data, 0o755)
    block = None

    def blob(name, size):
        nonlocal block
        path = os.path.join(data, name)
        if os.path.isfile(path) and os.path.getsize(path) == size:
            return
        log("  creating %s (%d MiB)" % (name, size // MIB))
        if block is None:
            block = os.urandom(MIB)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            left = size
            while left > 0:
                n = min(left, len(block))
                f.write(block[:n])
                left -= n
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)

    blob(big_name(cfg), cfg["big_mib"] * MIB)
    blob(par_name(cfg), cfg["par_mib"] * MIB)

    sdir = os.path.join(data, small_dir(cfg))
    os.makedirs(sdir, exist_ok=True)
    for i in range(cfg["small_files"]):
        p = os.path.join(sdir, small_name(i))
        if not (os.path.isfile(p) and os.path.getsize(p) == cfg["small_bytes"]):
            with open(p, "wb") as f:
                f.write(os.urandom(cfg["small_bytes"]))
            os.chmod(p, 0o644)

    ldir = os.path.join(data, list_dir(cfg))
    n = cfg["list_entries"]
    if not (os.path.isdir(ldir) and len(os.listdir(ldir)) == n):
        log("  creating %s/ (%d entries)" % (list_dir(cfg), n))
        if os.path.isdir(ldir):
            shutil.rmtree(ldir)
        os.makedirs(ldir)
        for i in range(n):
            with open(os.path.join(ldir, list_name(i)), "wb"):
                pass
    os.chmod(ldir, 0o755)

    up = os.path.join(data, "upload")
    if os.path.isdir(up):
        shutil.rmtree(up)
    os.makedirs(up)
    os.chmod(up, 0o777)
    try:
        import pwd
        pw = pwd.getpwnam(ctx["sys_user"])
        os.chown(up, pw.pw_uid, pw.pw_gid)
    except (KeyError, PermissionError):
        pass


def warm_page_cache(ctx, cfg):
    """Reads the download files once before each run (and stats the
    listing directories' entries): the table
    says "data set in the page cache", and without this the first server of
    a workload (ferroftp, always) paid for whatever the previous workload
    evicted (a first RETR at 400 MiB/s among runs of 5,000)."""
    buf = bytearray(8 * MIB)
    for name in (big_name(cfg), par_name(cfg)):
        try:
            with open(os.path.join(ctx["data"], name), "rb", buffering=0) as f:
                while f.readinto(buf):
                    pass
        except OSError:
            pass
    # The listing directories too: every entry looked up and its inode
    # read, as a LIST does, so no server lists a directory whose inodes the
    # big files pushed out of memory.
    for directory in (list_dir(cfg), small_dir(cfg)):
        try:
            for entry in os.scandir(os.path.join(ctx["data"], directory)):
                entry.stat(follow_symlinks=False)
        except OSError:
            pass


def big_name(cfg):
    return "big-%dM.bin" % cfg["big_mib"]


def par_name(cfg):
    return "par-%dM.bin" % cfg["par_mib"]


def small_dir(cfg):
    return "small-%dx%d" % (cfg["small_files"], cfg["small_bytes"])


def small_name(i):
    return "f%05d.bin" % i


def list_dir(cfg):
    return "list-%d" % cfg["list_entries"]


def list_name(i):
    return "e%07d" % i


# --------------------------------------------------------------------------
# workloads.  Each returns (value, note or None) or raises BenchError.


def make_tls_certificate(run_dir):
    """One self-signed RSA-2048 certificate for every server's FTPS, made
    for the run (readable by the servers' unprivileged processes)."""
    cert = os.path.join(run_dir, "tls-cert.pem")
    key = os.path.join(run_dir, "tls-key.pem")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj",
                        "/CN=localhost", "-days", "7", "-keyout", key, "-out", cert],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    if p.returncode != 0:
        raise SystemExit("openssl req failed: %s" % p.stdout.decode(errors="replace")[:300])
    os.chmod(cert, 0o644)
    os.chmod(key, 0o644)
    return cert, key


def aes_gcm_limit():
    """`openssl speed` of AES-128-GCM and AES-256-GCM, one core, 16 KiB
    blocks (a TLS record)."""
    found = []
    for cipher in ("aes-128-gcm", "aes-256-gcm"):
        try:
            out = subprocess.run(["openssl", "speed", "-seconds", "2", "-bytes", "16384", "-evp", cipher],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=60).stdout.decode()
        except (OSError, subprocess.SubprocessError):
            continue
        for line in out.splitlines():
            if line.lower().startswith(cipher):
                kbs = float(line.split()[-1].rstrip("k"))
                found.append("%s %.0f MiB/s" % (cipher.upper(), kbs * 1000 / MIB))
    return ", ".join(found) + " (openssl speed, 16 KiB blocks)" if found else "unknown (openssl speed failed)"


def w_retr(srv, cfg, ctx):
    size = cfg["big_mib"] * MIB
    buf = bytearray(SOCKBUF)
    rates = []
    cpu = CpuMeter(srv)
    for _ in range(cfg["retr_runs"]):
        deadline = time.monotonic() + 60 + size / (10 * MIB)
        ctl = Ctl(srv.port)
        try:
            ctl.login(srv.sdef.user, srv.sdef.password)
            cpu.start()
            t0 = time.monotonic()
            retr_into(ctl, big_name(cfg), size, deadline, buf)
            dt = time.monotonic() - t0
            cpu.stop()
        finally:
            ctl.quit()
        rates.append(size / MIB / dt)
    return statistics.median(rates), "runs %s; %s" % (
        ", ".join("%.0f" % r for r in rates), cpu.per(size * len(rates) / GIB, "GiB"))


def w_stor(srv, cfg, ctx):
    size = cfg["stor_mib"] * MIB
    block = memoryview(os.urandom(SOCKBUF))
    rates = []
    cpu = CpuMeter(srv)
    for i in range(cfg["stor_runs"]):
        name = "upload/stor-%s-%d.bin" % (srv.sdef.name, i)
        local = os.path.join(ctx["data"], name)
        deadline = time.monotonic() + 60 + size / (10 * MIB)
        ctl = Ctl(srv.port)
        try:
            ctl.login(srv.sdef.user, srv.sdef.password)
            ctl.cmd("TYPE I", (200,))
            addr = ctl.pasv()
            ds = data_socket(addr, 30, rcv=False)
            try:
                cpu.start()
                t0 = time.monotonic()
                ctl.cmd("STOR " + name, (125, 150))
                left = size
                while left > 0:
                    n = min(left, len(block))
                    ds.sendall(block[:n])
                    left -= n
                    if time.monotonic() > deadline:
                        raise BenchError("STOR timed out")
                ds.shutdown(socket.SHUT_WR)
            finally:
                ds.close()
            code, line = ctl.resp()
            dt = time.monotonic() - t0
            cpu.stop()
            if code not in (226, 250):
                raise BenchError("STOR end: %s" % line[:120])
        finally:
            ctl.quit()
        got = os.path.getsize(local) if os.path.exists(local) else -1
        try:
            os.remove(local)
        except OSError:
            pass
        if got != size:
            raise BenchError("STOR stored %d bytes, expected %d" % (got, size))
        rates.append(size / MIB / dt)
    return statistics.median(rates), "runs %s; %s" % (
        ", ".join("%.0f" % r for r in rates), cpu.per(size * len(rates) / GIB, "GiB"))


def target_dir(ctx):
    """Where cargo puts the builds: CARGO_TARGET_DIR, else target/."""
    return os.environ.get("CARGO_TARGET_DIR") or os.path.join(ctx["repo"], "target")


def tls_client(ctx):
    """The FTPS client: crates/ftp-bench-client, built by scripts/bench
    (Python's ssl returns one 16 KiB record per call and would be the
    bottleneck)."""
    path = os.path.join(target_dir(ctx), "release", "ftpbench-client")
    if not os.path.exists(path):
        raise BenchError("%s missing: cargo build --release -p ftp-bench-client" % path)
    return path


def run_tls_client(ctx, srv, verb, path, size, timeout):
    argv = [tls_client(ctx), verb, str(srv.port), srv.sdef.user, srv.sdef.password, path, str(size)]
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError("FTPS %s timed out" % verb.upper())
    if p.returncode != 0:
        raise BenchError(p.stderr.decode(errors="replace").strip()[:200])
    fields = p.stdout.decode().split()
    if len(fields) != 4 or fields[0] != "MIBPS":
        raise BenchError("unexpected client output %r" % p.stdout[:120])
    return float(fields[1]), "%s %s" % (fields[2], fields[3])


def kernel_tls_sockets():
    """TlsTxSw of /proc/net/tls_stat: sockets whose sends the kernel has
    encrypted since boot (kernel TLS); None where the kernel has no kTLS."""
    try:
        with open("/proc/net/tls_stat") as f:
            for line in f:
                fields = line.split()
                if len(fields) == 2 and fields[0] == "TlsTxSw":
                    return int(fields[1])
    except (OSError, ValueError):
        pass
    return None


def w_tlsretr(srv, cfg, ctx):
    """RETR of the big file over explicit FTPS: AUTH TLS, PBSZ 0, PROT P,
    the data connection resuming the control connection's TLS session.
    The note says whether the kernel encrypted the runs (kernel TLS, which
    ferroftp uses where the kernel has it, and OpenSSL-based peers may)."""
    size = cfg["big_mib"] * MIB
    rates, suite, in_kernel = [], "?", 0
    cpu = CpuMeter(srv)
    for _ in range(cfg["retr_runs"]):
        before = kernel_tls_sockets()
        cpu.start()
        rate, suite = run_tls_client(ctx, srv, "retr", big_name(cfg), size, 60 + size / (10 * MIB))
        cpu.stop(settle=0.3)
        after = kernel_tls_sockets()
        if before is not None and after is not None and after > before:
            in_kernel += 1
        rates.append(rate)
    if kernel_tls_sockets() is None:
        ktls = "no kernel TLS on this machine"
    else:
        ktls = "kernel TLS in %d of %d runs" % (in_kernel, len(rates))
    return statistics.median(rates), "%s; %s; runs %s; %s" % (
        suite, ktls, ", ".join("%.0f" % r for r in rates), cpu.per(size * len(rates) / GIB, "GiB"))


def w_tlsstor(srv, cfg, ctx):
    """STOR over explicit FTPS, as w_stor, with PROT P and a resumed data
    session; the stored size is checked."""
    size = cfg["stor_mib"] * MIB
    rates = []
    cpu = CpuMeter(srv)
    for i in range(cfg["stor_runs"]):
        name = "upload/tlsstor-%s-%d.bin" % (srv.sdef.name, i)
        local = os.path.join(ctx["data"], name)
        try:
            cpu.start()
            rate, _ = run_tls_client(ctx, srv, "stor", name, size, 60 + size / (10 * MIB))
            cpu.stop(settle=0.3)
            got = os.path.getsize(local) if os.path.exists(local) else -1
        finally:
            try:
                os.remove(local)
            except OSError:
                pass
        if got != size:
            raise BenchError("FTPS STOR stored %d bytes, expected %d" % (got, size))
        rates.append(rate)
    return statistics.median(rates), "runs %s; %s" % (
        ", ".join("%.0f" % r for r in rates), cpu.per(size * len(rates) / GIB, "GiB"))


def garage(ctx):
    """A single-node Garage (scripts/garage, built with cargo once), started
    on first use and stopped when the run ends."""
    if "garage" not in ctx:
        script = os.path.join(ctx["repo"], "scripts", "garage")
        p = subprocess.run([script, "start", "--nodes", "1", "--watch-pid", str(os.getpid())],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=3600)
        if p.returncode != 0:
            raise BenchError("scripts/garage start failed: %s" % p.stderr.decode(errors="replace")[-200:])
        env = {}
        for line in p.stdout.decode().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                env[k.strip()] = v.strip().strip("'")
        ctx["garage"] = env
    return ctx["garage"]


def stop_garage(ctx):
    g = ctx.pop("garage", None)
    if g and g.get("GARAGE_DIR"):
        subprocess.run([os.path.join(ctx["repo"], "scripts", "garage"), "stop", g["GARAGE_DIR"]],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)


def s3_upload(ctl, name, size, block):
    """STOR `size` bytes as `name` over a logged-in connection (setup)."""
    ctl.cmd("TYPE I", (200,))
    ds = data_socket(ctl.pasv(), 30, rcv=False)
    try:
        ctl.cmd("STOR " + name, (125, 150))
        left = size
        while left > 0:
            n = min(left, len(block))
            ds.sendall(block[:n])
            left -= n
        ds.shutdown(socket.SHUT_WR)
    finally:
        ds.close()
    code, line = ctl.resp()
    if code not in (226, 250):
        raise BenchError("STOR %s: %s" % (name, line[:120]))


def s3_size(ctl, name):
    ctl.send("SIZE " + name)
    code, line = ctl.resp()
    return int(line.split()[1]) if code == 213 else -1


def w_s3retr(srv, cfg, ctx):
    """RETR from the S3 backend (ranged GETs streamed from Garage); the
    object is uploaded through ferroftp first, untimed."""
    size = cfg["s3_mib"] * MIB
    name = "s3-big-%dM.bin" % cfg["s3_mib"]
    ctl = Ctl(srv.port)
    try:
        ctl.login(srv.sdef.user, srv.sdef.password)
        ctl.cmd("TYPE I", (200,))
        if s3_size(ctl, name) != size:
            s3_upload(ctl, name, size, memoryview(os.urandom(SOCKBUF)))
    finally:
        ctl.quit()
    buf = bytearray(SOCKBUF)
    rates = []
    for _ in range(cfg["retr_runs"]):
        ctl = Ctl(srv.port)
        try:
            ctl.login(srv.sdef.user, srv.sdef.password)
            t0 = time.monotonic()
            retr_into(ctl, name, size, time.monotonic() + 60 + size / (5 * MIB), buf)
            dt = time.monotonic() - t0
        finally:
            ctl.quit()
        rates.append(size / MIB / dt)
    return statistics.median(rates), "runs " + ", ".join("%.0f" % r for r in rates)


def w_s3stor(srv, cfg, ctx):
    """STOR to the S3 backend (multipart upload to Garage, completed before
    226); the stored size is checked with SIZE."""
    size = cfg["s3_mib"] * MIB
    block = memoryview(os.urandom(SOCKBUF))
    rates = []
    for i in range(cfg["stor_runs"]):
        name = "s3-stor-%d.bin" % i
        ctl = Ctl(srv.port)
        try:
            ctl.login(srv.sdef.user, srv.sdef.password)
            t0 = time.monotonic()
            s3_upload(ctl, name, size, block)
            dt = time.monotonic() - t0
            got = s3_size(ctl, name)
            ctl.send("DELE " + name)
            ctl.resp()
        finally:
            ctl.quit()
        if got != size:
            raise BenchError("S3 STOR stored %d bytes, expected %d" % (got, size))
        rates.append(size / MIB / dt)
    return statistics.median(rates), "runs " + ", ".join("%.0f" % r for r in rates)


def w_s3list(srv, cfg, ctx):
    """LIST of a prefix with s3_list_entries objects (listed page by page
    from Garage); the objects are made through ferroftp first, untimed."""
    n = cfg["s3_list_entries"]
    ldir = "s3-list-%d" % n
    ctl = Ctl(srv.port)
    try:
        ctl.login(srv.sdef.user, srv.sdef.password)
        ctl.send("MKD " + ldir)
        ctl.resp()
        ctl.cmd("TYPE I", (200,))
        ds = data_socket(ctl.pasv(), 30)
        ctl.cmd("NLST " + ldir, (125, 150))
        have = b""
        while True:
            chunk = ds.recv(1 << 16)
            if not chunk:
                break
            have += chunk
        ds.close()
        ctl.resp()
        present = set(os.path.basename(x) for x in have.decode("latin-1").split())
        empty = memoryview(b"")
        for i in range(n):
            if list_name(i) not in present:
                s3_upload(ctl, "%s/%s" % (ldir, list_name(i)), 0, empty)
    finally:
        ctl.quit()
    return w_list(srv, cfg, ctx, directory=ldir, entries=n)


def curl_base(srv, timeout):
    return ["curl", "-q", "--silent", "--show-error", "--max-time", "%d" % timeout,
            "--user", "%s:%s" % (srv.sdef.user, srv.sdef.password)]


def warm_login(srv):
    """One login + QUIT, done the same for every server before a row that
    is about something else than logging in (listing, small files, idle
    memory). A server that caches verified credentials (ferroftp, whose
    argon2 check costs ~60 ms and 19 MiB once) then answers the row's own
    logins without hashing, as it does in steady state; the login row
    measures the hashing itself."""
    warm = Ctl(srv.port)
    try:
        warm.login(srv.sdef.user, srv.sdef.password)
    finally:
        warm.quit()


def w_small(srv, cfg, ctx):
    """libcurl (8.x, through pycurl, installed with pip by scripts/bench):
    one easy handle for every URL, so one control connection, as the curl
    tool does.  Median of the runs.  libcurl 8 has none of the 1 s poll
    stalls of the Debian 12 curl 7.88 tool (the "smallcli" row)."""
    try:
        import pycurl
    except ImportError:
        raise BenchError("pycurl (libcurl 8) not installed: pip install pycurl")
    n = cfg["small_files"]
    warm_login(srv)
    rates = []
    # As in smallraw, each side's CPU per file; the session's login is in.
    cpu = CpuMeter(srv, live_threads=True)
    for _ in range(cfg["small_runs"]):
        c = pycurl.Curl()
        got = [0]

        def sink(chunk):
            got[0] += len(chunk)

        c.setopt(pycurl.USERPWD, "%s:%s" % (srv.sdef.user, srv.sdef.password))
        c.setopt(pycurl.WRITEFUNCTION, sink)
        c.setopt(pycurl.TIMEOUT, 30)
        try:
            connects = 0
            cpu.start()
            t0 = time.monotonic()
            for i in range(n):
                c.setopt(pycurl.URL, "ftp://%s:%d/%s/%s" % (HOST, srv.port, small_dir(cfg), small_name(i)))
                c.perform()
                connects += c.getinfo(pycurl.NUM_CONNECTS)
            dt = time.monotonic() - t0
            # Before the handle closes: a forking server's session process
            # ends with the control connection.
            cpu.stop()
        except pycurl.error as e:
            raise BenchError("libcurl: %s" % (e,))
        finally:
            c.close()
        if got[0] != n * cfg["small_bytes"]:
            raise BenchError("libcurl fetched %d bytes, expected %d" % (got[0], n * cfg["small_bytes"]))
        # The row is the files over one control connection: a server that
        # closed it between files would be measured on logins as well.
        # libcurl counts the data connections too, one per file.
        if connects != n + 1:
            raise BenchError("libcurl opened %d connections for %d files, not one control "
                             "connection and a data connection per file" % (connects, n))
        rates.append(n / dt)
    version = pycurl.version.split()[1] if " " in pycurl.version else pycurl.version
    return statistics.median(rates), "%s; runs %s; %s" % (
        version, ", ".join("%.0f" % r for r in rates), cpu.per_file(n * cfg["small_runs"]))


def w_smallcli(srv, cfg, ctx):
    """curl, one invocation with all URLs, so one control connection.

    curl 7.88 (Debian 12) sometimes waits a full 1000 ms before opening a
    passive data connection, when the server's EPSV reply was already
    readable at curl's zero-timeout poll right after sending EPSV -- which
    happens when the server's thread preempts curl on its CPU (README,
    "Known client quirk").  Those stalls
    are the client's, so the row is the best of three runs and the note
    counts the stalled transfers of that run; the "smallraw" row measures
    the same files with the raw-socket client.
    """
    if not shutil.which("curl"):
        raise BenchError("curl not found")
    n = cfg["small_files"]
    cfgfile = os.path.join(ctx["run"], "curl-small.cfg")
    with open(cfgfile, "w") as f:
        for i in range(n):
            f.write('url = "ftp://%s:%d/%s/%s"\noutput = "/dev/null"\n'
                    % (HOST, srv.port, small_dir(cfg), small_name(i)))
    # a transfer can stall for 1 s (see above), hence the generous timeout
    timeout = 30 + int(n * 1.2)
    argv = curl_base(srv, timeout) + ["--config", cfgfile, "--write-out",
                                      "%{num_connects} %{size_download} %{time_total}\\n"]
    warm_login(srv)
    runs = []
    t_start = time.monotonic()
    for _ in range(cfg["small_runs"]):
        # a run without stalls cannot be beaten by client luck; and stalls
        # can make a run last minutes, so stop after one minute of runs
        if runs and (runs[-1][1] == 0 or time.monotonic() - t_start > 60):
            break
        t0 = time.monotonic()
        try:
            p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=timeout + 10)
        except subprocess.TimeoutExpired:
            raise BenchError("curl timed out")
        dt = time.monotonic() - t0
        if p.returncode != 0:
            raise BenchError("curl exit %d: %s" % (p.returncode, p.stderr.decode(errors="replace").strip()[:200]))
        rows = [l.split() for l in p.stdout.decode().splitlines() if l.strip()]
        connects = sum(int(r[0]) for r in rows)
        got = sum(int(r[1]) for r in rows)
        stalls = sum(1 for r in rows if float(r[2]) >= 0.95)
        if len(rows) != n or got != n * cfg["small_bytes"]:
            raise BenchError("curl fetched %d files / %d bytes, expected %d / %d"
                             % (len(rows), got, n, n * cfg["small_bytes"]))
        # num_connects counts data connections too: one control + one per file
        if connects != n + 1:
            raise BenchError("curl made %d connections for %d files (expected %d: "
                             "one control + one data per file)" % (connects, n, n + 1))
        runs.append((n / dt, stalls))
    best = max(runs)
    note = "best of %s files/s" % ", ".join("%.0f" % r[0] for r in runs)
    if best[1]:
        note += "; %d of %d transfers of the best run include a ~1 s curl poll stall" % (best[1], n)
    else:
        note += "; no curl stall"
    return best[0], note


def w_smallraw(srv, cfg, ctx):
    """The same small files with the raw-socket client: one control
    connection, PASV + RETR per file (what curl does, minus its stalls)."""
    n = cfg["small_files"]
    size = cfg["small_bytes"]
    buf = bytearray(max(size, 64 * KIB))
    rates = []
    # CPU per file on each side, logins left out: the exchange is a
    # ping-pong, so a client costing C per file caps any server below 1/C
    # files/s -- the figure that says how far the row can move at all.
    cpu = CpuMeter(srv, live_threads=True)
    warm_login(srv)
    for _ in range(cfg["small_runs"]):
        deadline = time.monotonic() + 30 + n * 0.5
        ctl = Ctl(srv.port)
        try:
            t0 = time.monotonic()
            ctl.login(srv.sdef.user, srv.sdef.password)
            ctl.cmd("TYPE I", (200,))
            cpu.start()
            mv = memoryview(buf)
            for i in range(n):
                addr = ctl.pasv()
                ds = data_socket(addr, 30)
                try:
                    ctl.cmd("RETR %s/%s" % (small_dir(cfg), small_name(i)), (125, 150))
                    total = 0
                    while True:
                        k = ds.recv_into(mv)
                        if not k:
                            break
                        total += k
                finally:
                    ds.close()
                code, line = ctl.resp()
                if code not in (226, 250):
                    raise BenchError("RETR end: %s" % line[:120])
                if total != size:
                    raise BenchError("file %d: got %d bytes, expected %d" % (i, total, size))
                if time.monotonic() > deadline:
                    raise BenchError("timed out after %d files" % i)
            dt = time.monotonic() - t0
            # The tree includes a forking server's live session process.
            cpu.stop()
        finally:
            ctl.quit()
        rates.append(n / dt)
    return statistics.median(rates), "runs %s; %s" % (
        ", ".join("%.0f" % r for r in rates), cpu.per_file(n * cfg["small_runs"]))


def w_parallel(srv, cfg, ctx):
    nclients = cfg["par_clients"]
    size = cfg["par_mib"] * MIB
    timeout = 60 + nclients * size / (10 * MIB)
    barrier = threading.Barrier(nclients + 1, timeout=60)
    results = [None] * nclients
    starts = [0.0] * nclients
    ends = [0.0] * nclients

    def client(i):
        ctl = None
        try:
            ctl = Ctl(srv.port)
            ctl.login(srv.sdef.user, srv.sdef.password)
            buf = bytearray(SOCKBUF)
            barrier.wait()
            # Each client's own start: the first may finish a tiny run
            # before the main thread is scheduled again after the barrier.
            starts[i] = time.monotonic()
            retr_into(ctl, par_name(cfg), size, time.monotonic() + timeout, buf)
            ends[i] = time.monotonic()
            results[i] = True
        except threading.BrokenBarrierError:
            results[i] = "barrier broken"
        except Exception as e:  # noqa: BLE001 - reported in the notes
            results[i] = "%s: %s" % (type(e).__name__, e)
            try:
                barrier.abort()
            except Exception:  # noqa: BLE001
                pass
        finally:
            if ctl:
                ctl.quit()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(nclients)]
    for t in threads:
        t.start()
    cpu = CpuMeter(srv)
    cpu.start()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pass
    t0 = time.monotonic()
    ticks0 = machine_cpu_ticks()
    for t in threads:
        t.join(max(1.0, timeout - (time.monotonic() - t0)))
    ticks1 = machine_cpu_ticks()
    cpu.stop(settle=0.5)
    errors = [r for r in results if r is not True]
    if errors:
        first = next((e for e in errors if e and e != "barrier broken"), errors[0])
        raise BenchError("%d of %d clients failed (%s)" % (len(errors), nclients, first))
    dt = max(ends) - min(starts)
    # Says whether the row measured a server or the machine: near 100%
    # every server that sends with sendfile is at the same kernel cost.
    notes = [busy_note(ticks0, ticks1), cpu.per(nclients * size / GIB, "GiB")]
    return nclients * size / MIB / dt, "; ".join(n for n in notes if n)


def w_list(srv, cfg, ctx, directory=None, entries=None):
    """LIST with curl, list_runs times: the median time, and the highest
    server peak RSS of the runs. One run alone moved by a fifth from run to
    run (0.066-0.093 s for ferroftp in five runs of one session, while
    vsftpd stayed at 0.134-0.154), more than the rows' differences."""
    if not shutil.which("curl"):
        raise BenchError("curl not found")
    n = entries if entries is not None else cfg["list_entries"]
    directory = directory or list_dir(cfg)
    out = os.path.join(ctx["run"], "list-%s.txt" % srv.sdef.name)
    timeout = 120
    argv = curl_base(srv, timeout) + ["--output", out,
                                      "ftp://%s:%d/%s/" % (HOST, srv.port, directory)]
    # the row is about the listing (and its memory figure the listing's)
    warm_login(srv)
    pat = re.compile(r"(?:^|\s)e\d{7}\s*$")
    times, peaks = [], []
    for _ in range(cfg["list_runs"]):
        sampler = PeakSampler(srv.proc.pid)
        sampler.start()
        t0 = time.monotonic()
        try:
            p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=timeout + 10)
        except subprocess.TimeoutExpired:
            sampler.stop()
            raise BenchError("curl timed out")
        times.append(time.monotonic() - t0)
        peaks.append(sampler.stop())
        if p.returncode != 0:
            raise BenchError("curl exit %d: %s" % (p.returncode, p.stderr.decode(errors="replace").strip()[:200]))
        with open(out, "rb") as f:
            count = sum(1 for line in f if pat.search(line.decode("latin-1")))
        os.remove(out)
        if count != n:
            raise BenchError("listed %d of %d entries" % (count, n))
    note = "runs " + ", ".join("%.3f s" % t for t in times)
    return (statistics.median(times), max(peaks) / 1024.0), note


def _worker_init():
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def _login_worker(port, user, password, seconds):
    """connect, banner, USER, PASS, QUIT in a loop; lean on purpose so the
    client (8 Python processes on the same cores) costs as little as possible."""
    ok = err = 0
    first_err = None
    deadline = time.monotonic() + seconds
    linger = (1).to_bytes(4, "little") + (0).to_bytes(4, "little")
    user_cmd = b"USER " + user.encode() + b"\r\n"
    pass_cmd = b"PASS " + password.encode() + b"\r\n"
    addr = (HOST, port)
    while time.monotonic() < deadline:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        buf = b""

        def reply():
            # returns the 3-digit code of the next complete (multi-line) reply
            nonlocal buf
            while True:
                end = buf.find(b"\n")
                while end < 0:
                    chunk = s.recv(4096)
                    if not chunk:
                        raise OSError("connection closed")
                    buf += chunk
                    end = buf.find(b"\n")
                    if end < 0 and len(buf) > 65536:
                        raise OSError("reply line too long")
                line, buf = buf[:end + 1], buf[end + 1:]
                if line[3:4] != b"-":
                    return line[:3]
                code = line[:3]
                for _ in range(1000):
                    end = buf.find(b"\n")
                    while end < 0:
                        chunk = s.recv(4096)
                        if not chunk:
                            raise OSError("connection closed")
                        buf += chunk
                        end = buf.find(b"\n")
                    line, buf = buf[:end + 1], buf[end + 1:]
                    if line[:3] == code and line[3:4] == b" ":
                        return code
                raise OSError("endless multi-line reply")

        try:
            s.settimeout(10)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.connect(addr)
            if reply() != b"220":
                raise OSError("bad banner")
            s.sendall(user_cmd)
            c = reply()
            if c == b"331":
                s.sendall(pass_cmd)
                c = reply()
            if c != b"230":
                raise OSError("login refused (%s)" % c.decode(errors="replace"))
            s.sendall(b"QUIT\r\n")
            reply()
            ok += 1
        except OSError as e:
            err += 1
            if first_err is None:
                first_err = str(e)
            time.sleep(0.01)
        finally:
            try:
                # RST instead of FIN: no TIME_WAIT pile-up on the client side
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                s.close()
            except OSError:
                pass
    return ok, err, first_err


def w_login(srv, cfg, ctx):
    workers = cfg["login_workers"]
    secs = cfg["login_seconds"]
    mp = multiprocessing.get_context("fork")
    with mp.Pool(workers, initializer=_worker_init) as pool:
        cpu0 = tree_cpu_seconds(srv.proc.pid)
        t0 = time.monotonic()
        res = pool.starmap_async(_login_worker, [(srv.port, srv.sdef.user, srv.sdef.password, secs)] * workers)
        try:
            results = res.get(timeout=secs + 60)
        except multiprocessing.TimeoutError:
            pool.terminate()
            raise BenchError("login workers did not finish")
        dt = time.monotonic() - t0
        cpu = tree_cpu_seconds(srv.proc.pid) - cpu0
    ok = sum(r[0] for r in results)
    err = sum(r[1] for r in results)
    first = next((r[2] for r in results if r[2]), None)
    if ok == 0:
        raise BenchError("no successful login (%s)" % first)
    note = "server CPU %.0f%% of one core" % (100 * cpu / dt)
    if err:
        msg = "%d failed attempts (%s)" % (err, first)
        if err > ok // 100:
            raise BenchError(msg)
        note += "; " + msg
    return ok / dt, note


def w_idle(srv, cfg, ctx):
    n = cfg["idle_sessions"]
    pid = srv.proc.pid
    # one login + QUIT first, so one-time costs of the first login (lazy
    # initialisation, password-hash buffers kept by the allocator) are part
    # of the baseline and the figure is the marginal cost of a session
    warm_login(srv)
    srv.settle(1.0)
    before_rss, before_pss = tree_rss_kib(pid), tree_pss_kib(pid)
    sessions = []
    lock = threading.Lock()
    errors = []
    deadline = time.monotonic() + 60 + n * 0.2
    todo = list(range(n))

    def opener():
        while True:
            with lock:
                if not todo or time.monotonic() > deadline:
                    return
                todo.pop()
            try:
                c = Ctl(srv.port, timeout=30)
                try:
                    c.login(srv.sdef.user, srv.sdef.password)
                except Exception:
                    c.close()
                    raise
                with lock:
                    sessions.append(c)
            except (OSError, BenchError) as e:
                with lock:
                    errors.append(str(e))

    # sessions are opened one after the other: concurrent logins would make
    # servers that hash passwords on a thread pool keep one hash buffer per
    # pool thread, which is login concurrency, not session cost
    threads = [threading.Thread(target=opener, daemon=True) for _ in range(1)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(1.0, deadline - time.monotonic() + 5))
        if len(sessions) != n:
            raise BenchError("only %d of %d sessions logged in (%s)"
                             % (len(sessions), n, errors[0] if errors else "timeout"))
        time.sleep(1.0)
        # each session must still be alive and answering
        for c in sessions[:: max(1, n // 20)]:
            c.cmd("NOOP", (200,))
        samples = []
        for _ in range(3):
            samples.append(tree_rss_kib(pid))
            time.sleep(0.2)
        after_rss = statistics.median(samples)
        after_pss = tree_pss_kib(pid)
        nproc = len(proc_tree(pid))
    finally:
        with lock:
            for c in sessions:
                c.close()
    return ((after_rss - before_rss) / n, (after_pss - before_pss) / n), \
        "%d server processes with %d sessions" % (nproc, n)


WORKLOAD_FUNCS = {"retr": w_retr, "stor": w_stor, "storsync": w_stor, "tlsretr": w_tlsretr, "tlsstor": w_tlsstor,
                  "small": w_small, "smallcli": w_smallcli,
                  "smallraw": w_smallraw,
                  "parallel": w_parallel, "list": w_list, "login": w_login,
                  "idle": w_idle, "s3retr": w_s3retr, "s3stor": w_s3stor, "s3list": w_s3list}


def row_defs(cfg):
    """(key, workload, label, unit, higher_is_better, decimals)."""
    def size(mib):
        return "%d GiB" % (mib // 1024) if mib >= 1024 and mib % 1024 == 0 else "%d MiB" % mib
    return [
        ("retr", "retr", "RETR %s, 1 client, 4 MiB socket buffers (median of %d)"
         % (size(cfg["big_mib"]), cfg["retr_runs"]), "MiB/s", True, 0),
        ("stor", "stor", "STOR %s (median of %d)" % (size(cfg["stor_mib"]), cfg["stor_runs"]),
         "MiB/s", True, 0),
        ("storsync", "storsync", "STOR %s, ferroftp's default durability: fsync before 226 (no peer offers it)"
         % size(cfg["stor_mib"]), "MiB/s", True, 0),
        ("tlsretr", "tlsretr", "FTPS RETR %s (AUTH TLS, PROT P, resumed data session; median of %d)"
         % (size(cfg["big_mib"]), cfg["retr_runs"]), "MiB/s", True, 0),
        ("tlsstor", "tlsstor", "FTPS STOR %s (median of %d)" % (size(cfg["stor_mib"]), cfg["stor_runs"]),
         "MiB/s", True, 0),
        ("small", "small", "%d files of %d KiB, curl (libcurl 8), one control connection (median of %d)"
         % (cfg["small_files"], cfg["small_bytes"] // 1024, cfg["small_runs"]), "files/s", True, 0),
        ("smallcli", "smallcli", "same %d files, Debian's curl 7.88 tool (best of <=%d; client stalls, see notes)"
         % (cfg["small_files"], cfg["small_runs"]), "files/s", True, 0),
        ("smallraw", "smallraw", "same %d files, raw-socket client, one control connection (median of %d)"
         % (cfg["small_files"], cfg["small_runs"]), "files/s", True, 0),
        ("parallel", "parallel", "%d clients each RETR %s at once (aggregate; median of %d)"
         % (cfg["par_clients"], size(cfg["par_mib"]), cfg["par_runs"]), "MiB/s", True, 0),
        ("list_s", "list", "LIST of %s entries, curl (median of %d)"
         % (format(cfg["list_entries"], ","), cfg["list_runs"]),
         "s", False, 3),
        ("list_mem", "list", "LIST of %s entries: server peak RSS (process tree, highest of the runs)"
         % format(cfg["list_entries"], ","), "MiB", False, 1),
        ("login", "login", "connect+USER+PASS+QUIT, %d workers x %g s"
         % (cfg["login_workers"], cfg["login_seconds"]), "logins/s", True, 0),
        ("idle_rss", "idle", "%d idle logged-in sessions: RSS per session" % cfg["idle_sessions"],
         "KiB", False, 0),
        ("idle_pss", "idle", "%d idle logged-in sessions: PSS per session" % cfg["idle_sessions"],
         "KiB", False, 0),
        ("s3retr", "s3retr", "S3 backend (Garage, 1 node): RETR %s (median of %d)"
         % (size(cfg["s3_mib"]), cfg["retr_runs"]), "MiB/s", True, 0),
        ("s3stor", "s3stor", "S3 backend: STOR %s, multipart (median of %d)"
         % (size(cfg["s3_mib"]), cfg["stor_runs"]), "MiB/s", True, 0),
        ("s3list_s", "s3list", "S3 backend: LIST of %s objects, curl (median of %d)"
         % (format(cfg["s3_list_entries"], ","), cfg["list_runs"]),
         "s", False, 3),
        ("s3list_mem", "s3list", "S3 backend: LIST of %s objects: server peak RSS"
         % format(cfg["s3_list_entries"], ","), "MiB", False, 1),
    ]


def split_value(key, value):
    if key in ("list_s", "s3list_s"):
        return value[0]
    if key in ("list_mem", "s3list_mem"):
        return value[1]
    if key == "idle_rss":
        return value[0]
    if key == "idle_pss":
        return value[1]
    return value


# --------------------------------------------------------------------------
# main


def fmt(v, decimals):
    if v is None:
        return "fail"
    if decimals == 0:
        return format(int(round(v)), ",")
    return "%.*f" % (decimals, v)


def build_table(cfg, servers, workloads, results):
    """results[(server, workload)] = {"ok": bool, "value": ..., "note": ...}"""
    header = ["workload", "unit"] + servers + ["ferroftp vs best peer"]
    rows = []
    for key, wl, label, unit, higher, dec in row_defs(cfg):
        if wl not in workloads:
            continue
        cells = [label, unit]
        vals = {}
        for s in servers:
            r = results.get((s, wl))
            if r is None:
                cells.append("-")
                continue
            if r["ok"]:
                vals[s] = split_value(key, r["value"])
                cells.append(fmt(vals[s], dec))
            else:
                cells.append("fail")
        peers = [vals[s] for s in servers if s != "ferroftp" and s in vals]
        ratio = "-"
        if "ferroftp" in vals and peers:
            ff = vals["ferroftp"]
            if higher:
                best = max(peers)
                ratio = "%.2fx" % (ff / best) if best > 0 else "-"
            else:
                best = min(peers)
                if ff > 0 and best > 0:
                    ratio = "%.2fx" % (best / ff)
                elif ff <= 0 < best:
                    ratio = "ferroftp <= 0"
        cells.append(ratio)
        rows.append(cells)
    return header, rows


def markdown_table(header, rows):
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
    for r in rows:
        out.append("| " + " | ".join(r) + " |")
    return "\n".join(out)


def text_table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = []
    for j, r in enumerate([header] + rows):
        lines.append("  ".join(str(c).ljust(widths[i]) if i < 2 else str(c).rjust(widths[i])
                               for i, c in enumerate(r)))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# Rows measured in rounds (see main): the key of the preset that says how
# many runs each server gets.
INTERLEAVED = {"retr": "retr_runs", "stor": "stor_runs", "storsync": "stor_runs",
               "tlsretr": "retr_runs", "tlsstor": "stor_runs", "small": "small_runs",
               "smallraw": "small_runs", "parallel": "par_runs", "list": "list_runs"}

RUNS_NOTE = re.compile(r"(?:^|; )runs [^;]*")
# Notes a workload writes per run with figures that merge_runs averages
# over the rounds (pattern, and the format the means are written back in).
# They go after the runs; any other note (a client's version, the TLS
# suite) goes before them.
AVERAGED_NOTES = [
    (re.compile(r"CPU per file: server (\d+) us, client (\d+) us"),
     "CPU per file: server %.0f us, client %.0f us"),
    (re.compile(r"machine CPU busy (\d+)% \(softirq (\d+)%\)"),
     "machine CPU busy %.0f%% (softirq %.0f%%)"),
    (re.compile(r"CPU per GiB: server (\d+\.\d+) s, client (\d+\.\d+) s"),
     "CPU per GiB: server %.2f s, client %.2f s"),
]


def merge_runs(cells):
    """One cell from a server's one-run cells of the rounds: the median of
    their values (for a (seconds, peak memory) value, the median time and
    the highest peak), the runs in the order they ran, and the rest of the
    notes (the same for every run, but the AVERAGED_NOTES figures).
    A failed run makes the cell fail."""
    if not cells[-1]["ok"]:
        return cells[-1]
    values = [c["value"] for c in cells]
    if isinstance(values[0], tuple):
        value = (statistics.median(v[0] for v in values), max(v[1] for v in values))
        runs = ", ".join("%.3f s" % v[0] for v in values)
    else:
        value = statistics.median(values)
        runs = ", ".join("%.0f" % v for v in values)
    before = [part for part in (cells[0]["note"] or "").split("; ")
              if part and not RUNS_NOTE.fullmatch(part)
              and not any(pattern.fullmatch(part) for pattern, _ in AVERAGED_NOTES)]
    after = []
    for pattern, form in AVERAGED_NOTES:
        # (a run too short for one clock tick has no busy figure)
        found = [m for m in (pattern.search(c["note"] or "") for c in cells) if m]
        if found:
            columns = zip(*(m.groups() for m in found))
            after.append(form % tuple(statistics.mean(float(v) for v in col) for col in columns))
    note = "; ".join(before + ["runs " + runs] + after)
    return dict(ok=True, value=value, note=note)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repo", required=True)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--only", default=",".join(ALL_SERVERS))
    ap.add_argument("--workloads", default=",".join(ALL_WORKLOADS))
    ap.add_argument("--size", choices=sorted(PRESETS), default="full")
    ap.add_argument("--strict", action="store_true",
                    help="exit 1 when a ferroftp cell failed (for CI)")
    ap.add_argument("--out", default=None, help="markdown output file")
    ap.add_argument("--sys-user", default="ftpbench")
    ap.add_argument("--pam-service", default="ferroftp-bench")
    ap.add_argument("--keep-autogroup", action="store_true",
                    help="leave the scheduler's autogroups as they are (see AUTOGROUP)")
    ap.add_argument("--ferroftp-bin", default=None,
                    help="ferroftp binary (default target/release/ferroftp)")
    args = ap.parse_args()

    servers = [s.strip() for s in args.only.split(",") if s.strip()]
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    bad = [s for s in servers if s not in ALL_SERVERS] + [w for w in workloads if w not in ALL_WORKLOADS]
    if bad:
        sys.exit("unknown server/workload: %s (servers: %s; workloads: %s)"
                 % (", ".join(bad), ", ".join(ALL_SERVERS), ", ".join(ALL_WORKLOADS)))
    servers = [s for s in ALL_SERVERS if s in servers]
    workloads = [w for w in ALL_WORKLOADS if w in workloads]

    cfg = dict(PRESETS[args.size])
    for k, v in list(cfg.items()):
        env = os.environ.get("FERROFTP_BENCH_" + k.upper())
        if env:
            cfg[k] = type(v)(env)

    repo = os.path.abspath(args.repo)
    bench = os.path.join(repo, "bench")
    out_dir = os.path.join(bench, "out")
    ctx = dict(repo=repo, bench=bench, cache=args.cache,
               data=os.path.join(args.cache, "data"),
               run=os.path.join(out_dir, "run"), logs=os.path.join(out_dir, "logs"),
               sys_user=args.sys_user, pam_service=args.pam_service,
               ferroftp_bin=os.path.abspath(args.ferroftp_bin) if args.ferroftp_bin else None)
    for d in (ctx["run"], ctx["logs"]):
        os.makedirs(d, exist_ok=True)
    os.chmod(ctx["run"], 0o755)
    ctx["tls_cert"], ctx["tls_key"] = make_tls_certificate(ctx["run"])
    with open(_pids_file(ctx), "w"):
        pass

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass

    def on_signal(signum, frame):
        raise Terminated()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    log("== ferroftp side-by-side benchmark (%s sizes)" % args.size)
    log("   servers: %s" % ", ".join(servers))
    log("   workloads: %s" % ", ".join(workloads))
    log("   sizes: %s" % json.dumps(cfg))
    log("== data directory %s" % ctx["data"])
    make_data(ctx, cfg)

    sdefs = {s: SERVER_CLASSES[s](s, ctx) for s in servers}
    unavailable = {s: d.available() for s, d in sdefs.items()}
    versions = {}
    for s, d in sdefs.items():
        versions[s] = d.version() if not unavailable[s] else "-"
        log("   %-9s %s" % (s, unavailable[s] or "ready: " + versions[s]))

    results = {}
    notes = []
    interrupted = False
    start_failed = {}

    def start_server(s, wl):
        """Server s started for workload wl: (Running, None), or (None, the
        failed cell) when it is not available or does not start."""
        sdef = sdefs[s]
        sdef.workload = wl
        reason = unavailable[s] or start_failed.get(s)
        if reason:
            log("   %-9s fail: %s" % (s, reason))
            return None, dict(ok=False, note=reason)
        # up to three starts, each on a new port: a port can be taken
        # between picking and binding it
        for attempt in range(3):
            srv = Running(sdef, wl)
            try:
                srv.wait_ready()
                return srv, None
            except BenchError as e:
                srv.stop()
                why = sdef.fallback(str(e))
                if why:
                    log("   %-9s %s" % (s, why))
                    notes.append("%s: %s (first error: %s)" % (s, why, str(e)[-200:]))
                elif attempt == 2:
                    start_failed[s] = "did not start: %s" % e
                    log("   %-9s fail: %s" % (s, start_failed[s]))
                    return None, dict(ok=False, note=start_failed[s])
                else:
                    log("   %-9s start failed (%s), trying another port"
                        % (s, str(e)[-120:]))
        start_failed[s] = "did not start after three tries (see the notes)"
        return None, dict(ok=False, note=start_failed[s])

    def run_on(srv, run_cfg, s, wl):
        """Workload wl on the running server s: its cell (ok, value, note)."""
        warm_page_cache(ctx, run_cfg)
        try:
            t0 = time.monotonic()
            value, note = WORKLOAD_FUNCS[wl](srv, run_cfg, ctx)
            if srv.proc.poll() is not None:
                raise BenchError("server exited (code %s) during the run" % srv.proc.returncode)
            shown = value if not isinstance(value, tuple) else " / ".join("%.3f" % v for v in value)
            if isinstance(shown, float):
                shown = "%.1f" % shown
            log("   %-9s %s  (%.1f s%s)" % (s, shown, time.monotonic() - t0,
                                           "; " + note if note else ""))
            return dict(ok=True, value=value, note=note)
        except Exception as e:  # noqa: BLE001 - any failure is one cell's "fail"
            msg = str(e) or type(e).__name__
            if not isinstance(e, BenchError):
                msg = "%s: %s" % (type(e).__name__, e)
            log("   %-9s fail: %s" % (s, msg))
            return dict(ok=False, note=msg)

    started_at = datetime.datetime.now().astimezone()
    try:
        load_at_start = " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        load_at_start = "?"
    # autogroup_was: the value to restore, None when the run changed nothing
    autogroup = read_autogroup()
    autogroup_was = None
    if autogroup not in (None, "0") and not args.keep_autogroup and write_autogroup("0"):
        autogroup_was = autogroup
    if autogroup_was is not None:
        log("== scheduler autogroups turned off for the run (restored to %s after)" % autogroup_was)
    try:
        for wl in workloads:
            log("== workload %s" % wl)
            runs_key = INTERLEAVED.get(wl)
            rounds = cfg[runs_key] if runs_key else 1
            # Every server is started for the workload and stopped after it.
            # A row with several runs is measured in rounds: one run per
            # server per round, the servers' order rotated each round, so a
            # slow spell of the machine costs every server a run instead of
            # one server its whole turn (the servers not running a transfer
            # wait idle).
            run_cfg = dict(cfg, **{runs_key: 1}) if rounds > 1 else cfg
            cells = {}
            running = {}
            try:
                for s in servers:
                    if wl in FERROFTP_ONLY and s != "ferroftp":
                        continue
                    srv, failed = start_server(s, wl)
                    if srv is None:
                        results[(s, wl)] = failed
                    else:
                        running[s] = srv
                        cells[s] = []
                order = [s for s in servers if s in running]
                for r in range(rounds):
                    turn = r % len(order) if order else 0
                    for s in order[turn:] + order[:turn]:
                        done = cells[s]
                        if done and not done[-1]["ok"]:
                            continue
                        done.append(run_on(running[s], run_cfg, s, wl))
            finally:
                for srv in running.values():
                    srv.stop()
            for s, done in cells.items():
                if done:
                    results[(s, wl)] = merge_runs(done) if rounds > 1 else done[0]
    except (KeyboardInterrupt, Terminated):
        interrupted = True
        log("!! interrupted: servers stopped, writing partial results")
    finally:
        stop_garage(ctx)
        if autogroup_was is not None and not write_autogroup(autogroup_was):
            log("!! could not restore %s to %s" % (AUTOGROUP, autogroup_was))

    # ---- report
    header, rows = build_table(cfg, servers, workloads, results)
    log("")
    log(text_table(header, rows))
    for (s, wl), r in sorted(results.items(), key=lambda kv: (ALL_WORKLOADS.index(kv[0][1]), ALL_SERVERS.index(kv[0][0]))):
        if r.get("note"):
            notes.append("%s / %s: %s%s" % (wl, s, "" if r["ok"] else "fail: ", r["note"]))
    for n in notes:
        log("  note: " + n)

    kernel = os.uname().release
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    md = []
    md.append("# ferroftp side-by-side benchmark")
    md.append("")
    md.append("Generated by `scripts/bench` on %s." % started_at.strftime("%Y-%m-%d %H:%M %Z"))
    md.append("")
    md.append("- machine: `nproc` = %d, %.0f GiB RAM, CPU %s, kernel %s"
              % (os.cpu_count() or 0, mem_gib, cpu, kernel))
    md.append("- size preset: %s (%s)" % (args.size, ", ".join("%s=%s" % kv for kv in cfg.items())))
    md.append("- load average when the run started: %s (other work on the machine skews figures)"
              % load_at_start)
    md.append("- everything over loopback (127.0.0.1), client and server on the same %d cores; "
              "data set in the page cache" % (os.cpu_count() or 0))
    if autogroup_was is not None:
        md.append("- scheduler autogroups turned off for the run (`%s` was %s, restored after): "
                  "vsftpd's session per client would otherwise weigh one CPU share per client "
                  "against the benchmark client's one" % (AUTOGROUP, autogroup_was))
    elif autogroup == "1":
        md.append("- scheduler autogroups left on (`--keep-autogroup` or not root): the CPU is "
                  "shared by session first, so a server that makes a session per client "
                  "(vsftpd) gets more of it under load than one that does not")
    md.append("- versions: " + "; ".join("%s: %s" % (s, versions[s]) for s in servers))
    md.append("")
    md.append(markdown_table(header, rows))
    md.append("")
    md.append("Ratio column: ferroftp / best peer for throughput rows, best peer / ferroftp "
              "for seconds and memory rows, so above 1 means ferroftp is ahead. "
              "MiB = 2^20 bytes. RSS rows sum the RSS of the server's whole process tree "
              "(forking servers count every session process, shared pages included); "
              "the PSS row splits shared pages between processes.")
    md.append("")
    if {"tlsretr", "tlsstor"} & set(workloads):
        md.append("FTPS rows: every server offers explicit TLS with the same self-signed RSA-2048 "
                  "certificate made for the run; the client is crates/ftp-bench-client (rustls, 4 MiB "
                  "reads and writes), whose own CPU use stays well under one core. "
                  "The machine's single-core AES-GCM limit, for scale: %s." % aes_gcm_limit())
        md.append("")
    md.append("Setup: every server serves the same data directory on a loopback port picked at "
              "run time and is restarted for each workload. Logins: vsftpd and ProFTPD check the "
              "system account `%s` (password `bench`) through PAM (pam_unix, SHA-512 crypt); "
              "Pure-FTPd checks a PureDB virtual user `bench` with the same SHA-512 crypt hash; "
              "unFTP checks `bench`/`bench` from its JSON user file (plaintext) and ferroftp "
              "the account given as `--user bench:bench`. "
              "So the logins/s row includes each server's own password check. Configs: "
              "bench/ferroftp.toml (session limits only), bench/vsftpd.conf.in, "
              "bench/proftpd.conf.in, bench/pure-ftpd.flags, bench/unftp.flags." % args.sys_user)
    known = []
    if "pure-ftpd" in servers and "list" in workloads:
        known.append("Pure-FTPd is run with its shipped `--limitrecursion 10000:5`: a LIST stops "
                     "at 10,000 entries, so a larger LIST row shows fail.")
    if "proftpd" in servers and ("login" in workloads or "idle" in workloads):
        known.append("ProFTPD's standalone master sleeps 200 ms (its EINTR retry interval) after "
                     "each SIGCHLD, i.e. each ended session, before it accepts again: that caps its "
                     "logins/s.")
    if "smallcli" in workloads:
        known.append("curl 7.88 (Debian 12) sometimes waits a full 1 s poll timeout before opening "
                     "a passive data connection when the EPSV reply was already there at its zero-timeout "
                     "poll right after sending EPSV (a server thread woken on curl's CPU preempting "
                     "curl; ferroftp's SCHED_BATCH threads do not), so the curl "
                     "row is best of three and can still carry client stalls (counted in the "
                     "notes); the raw-socket row has no such stall.")
    if "unftp" in servers and ({"small", "smallcli", "smallraw"} & set(workloads)):
        known.append("unFTP sends its 226 about 40 ms after the data: Nagle on its control socket "
                     "holds the 226 until the client's delayed ACK of the 150 (a client setting "
                     "TCP_QUICKACK does not see it; curl and this client do not set it). That "
                     "caps its small-file rows near 22 files/s.")
    if "login" in workloads:
        known.append("The login client is 8 Python processes on the same cores as the server; "
                     "the notes give the server's own CPU use during the run (100% = one core).")
    if known:
        md.append("")
        md.append("Known peer / client behaviours:")
        md.append("")
        for k in known:
            md.append("- " + k)
    if notes:
        md.append("")
        md.append("Notes:")
        md.append("")
        for n in notes:
            md.append("- " + n.replace("|", "\\|"))
    md.append("")
    if args.out:
        out = args.out
    elif interrupted:
        out = os.path.join(out_dir, "RESULTS-interrupted.md")
    elif args.size == "tiny":
        out = os.path.join(out_dir, "RESULTS-tiny.md")
    else:
        out = os.path.join(bench, "RESULTS.md")
    with open(out, "w") as f:
        f.write("\n".join(md))
    raw = {"date": started_at.isoformat(), "size": args.size, "cfg": cfg,
           "versions": versions, "kernel": kernel, "nproc": os.cpu_count(),
           "results": {"%s/%s" % k: v for k, v in results.items()}}
    with open(os.path.join(out_dir, "results-%s.json" % args.size), "w") as f:
        json.dump(raw, f, indent=1, default=str)
    log("\nwrote %s" % out)
    if interrupted:
        return 130
    if args.strict and "ferroftp" in servers:
        failed = [wl for wl in workloads if not results.get(("ferroftp", wl), {}).get("ok")]
        if failed:
            log("strict: ferroftp failed %s" % ", ".join(failed))
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
