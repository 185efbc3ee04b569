"""What every experiment in experiments/ shares: the common options, starting and
stopping netkit servers, running `netkit bench` with a server's CPU time over its measured
window, the machine line, gnuplot plots, the verdict line, and writing an experiment's
section of docs/experiments.md (between its own markers, so experiments can be re-run one
at a time). scripts/bench-peers and scripts/bench-udp take cpu_ticks, the perf helpers
(start_perf, finish_perf, kernel_shares, overhead_paths) and write_section from here too."""

import argparse
import datetime
import json
import math
import os
import platform
import re
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "experiments.md"
URI_RE = re.compile(r"listening on (\S+)")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def parser(name, description):
    p = argparse.ArgumentParser(
        prog=f"experiments/{name}", description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build-dir", type=Path, default=ROOT / "build" / "release",
                   help="tree with bin/netkit (default: build/release)")
    p.add_argument("--smoke", action="store_true",
                   help="a tiny grid, a few seconds, results to a temporary directory: "
                        "shows the experiment works, measures nothing worth keeping")
    p.add_argument("--record", action="store_true",
                   help=f"write the results and plot into {DOC.relative_to(ROOT)}")
    return p


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def binary(args, name):
    path = args.build_dir / "bin" / name
    if not path.exists():
        sys.exit(f"no {path}: build it first (scripts/build release)")
    return path


def machine_line():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    # "-dirty": the scripts or sources differ from that commit.
    rev = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty", "--abbrev=7"],
                         capture_output=True, text=True).stdout.strip() or "unknown"
    return (f"{datetime.date.today().isoformat()}, Linux {platform.release()}, "
            f"{os.cpu_count()} × {cpu}, netkit {rev}")


def cpu_ticks(pid):
    """utime + stime (fields 14 and 15 of /proc/PID/stat) in clock ticks (CLK_TCK a second)."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # Field 2 (comm) is parenthesised and may contain spaces: split after the last ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # fields[0] is field 3 (state)


def load_note(at_start, busy=2):
    """A sentence on how busy the machine was: the 1-minute load average `at_start`
    (os.getloadavg()[0] taken then) and now, against the CPUs and the `busy` processes the
    experiment itself keeps running; it says the machine was shared when the load went
    beyond that."""
    now, cpus = os.getloadavg()[0], os.cpu_count() or 1
    shared = max(at_start, now) > busy + 0.5
    return (f"1-minute load average {at_start:.1f} at the start and {now:.1f} at the end on "
            f"{cpus} CPUs, of which this experiment keeps about {busy} busy" +
            ("; other work shared the CPUs (the machine is shared), so absolute figures are "
             "noisy and the interleaved ratios are the ones to quote." if shared else "."))


class Server:
    """A netkit server process; `uri` is what it printed after 'listening on'. With
    `cpu`, it runs pinned to that CPU (taskset execs it: `pid` is the server's own).
    Its stderr goes to a file, so a server logging a lot never blocks on a full pipe."""

    def __init__(self, argv, timeout=10.0, cpu=None, **popen):
        self.argv = [str(a) for a in argv]
        if cpu is not None:
            self.argv = ["taskset", "-c", str(cpu)] + self.argv
        self.errfile = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self.errfile,
                                     text=True, **popen)
        self.uri = None
        self.out = ""
        self.err = None  # set once stopped
        deadline = time.monotonic() + timeout
        while self.uri is None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                self.stop()
                raise RuntimeError(f"{' '.join(self.argv)}: no 'listening on' line in {timeout} s")
            line = self.proc.stdout.readline()
            if not line:
                err = self.stop()
                raise RuntimeError(f"{' '.join(self.argv)} exited: {err.strip()}")
            if m := URI_RE.search(line):
                self.uri = m.group(1)

    @property
    def pid(self):
        return self.proc.pid

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        """Stops and reaps the server; returns what it wrote to stderr (what it wrote to
        stdout after the 'listening on' line is left in self.out). Stopping again only
        returns that again."""
        if self.err is not None:
            return self.err
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out = self.proc.communicate()[0] or ""
        self.errfile.seek(0)
        self.err = self.errfile.read()
        self.errfile.close()
        return self.err

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class BenchRun:
    """What one `netkit bench --json` run gave: `result` (its JSON, None if it printed
    none), `server_cpu_s` (the server's CPU seconds over the measured window, None if not
    read), `rc` (its exit status) and `err` (its stderr, without the window marks)."""

    def __init__(self, result, server_cpu_s, rc, err):
        self.result, self.server_cpu_s, self.rc, self.err = result, server_cpu_s, rc, err

    def cpu_us_per_msg(self):
        messages = self.result.get("messages", 0) if self.result else 0
        if self.server_cpu_s is None or not messages:
            return None
        return self.server_cpu_s * 1e6 / messages


def bench_once(netkit, mode, target, options, server_pid=None, cpu=None, timeout=60.0):
    """Runs `netkit bench MODE --connect TARGET OPTIONS... --json` (pinned to `cpu` if
    given) and, with `server_pid`, reads that process's CPU time when the measured window
    opens and closes (`--mark-window`: connection set-up and teardown are left out, as
    scripts/bench-peers leaves them out). Stops and reaps the client after `timeout` s.
    bench() is what experiments call."""
    argv = ["taskset", "-c", str(cpu)] if cpu is not None else []
    argv += [str(netkit), "bench", mode, "--connect", target, *map(str, options), "--json"]
    if server_pid is not None:
        argv.append("--mark-window")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    out, err, marks = b"", b"", {}
    streams = {proc.stdout.fileno(): "out", proc.stderr.fileno(): "err"}
    deadline = time.monotonic() + timeout
    try:
        while streams:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"{' '.join(argv)}: no result in {timeout:.0f} s")
            for fd in select.select(list(streams), [], [], left)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    del streams[fd]
                elif streams[fd] == "out":
                    out += chunk
                else:
                    err += chunk
                    for mark in (b"measuring\n", b"measured\n"):
                        if mark in err and mark not in marks and server_pid is not None:
                            try:
                                marks[mark] = cpu_ticks(server_pid)
                            except (OSError, ValueError, IndexError):
                                marks[mark] = None  # the server is gone
                            err = err.replace(mark, b"", 1)
        rc = proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    t0, t1 = marks.get(b"measuring\n"), marks.get(b"measured\n")
    cpu_s = (t1 - t0) / CLK_TCK if t0 is not None and t1 is not None else None
    try:
        result = json.loads(out)
    except ValueError:
        result = None
    return BenchRun(result, cpu_s, rc, err.decode(errors="replace").strip())


def bench(netkit, mode, target, options, server_pid=None, cpu=None, timeout=60.0):
    """bench_once(), measured once more when the window saw neither a reply nor an error:
    the client was not scheduled through it (on a loaded machine a process pinned to one
    CPU can wait that long), which says nothing about the server. Also when replies came
    but the server's CPU read zero: /proc counts it in 10 ms ticks, which a short window
    on a loaded machine can miss."""
    for attempt in range(2):
        run = bench_once(netkit, mode, target, options, server_pid, cpu, timeout)
        r = run.result or {}
        again = "measuring again" if attempt == 0 else "twice: reported as is"
        # Exactly zero: a None (the server gone, the window never opened) is a failure to
        # report, not to measure again.
        cpu_reads = [r.get("server_cpu_s") if r.get("server_pid") is not None else None,
                     run.server_cpu_s]
        if run.rc == 0 and r.get("messages") and 0.0 in cpu_reads:
            log(f"  bench {mode} {target}: the server's CPU read 0 s "
                f"over the {r.get('seconds', 0):.3f} s window ({r.get('messages')} replies), "
                + again)
            continue
        if run.rc != 0 or r.get("messages") or r.get("errors_total"):
            break
        log(f"  bench {mode} {target}: no reply in the {r.get('seconds', 0):.3f} s window and "
            f"no error (a stall: {r.get('established')} connections up, "
            f"{r.get('bytes_sent')} bytes sent, {r.get('bytes_received')} received), "
            + again)
    return run


# Sampling a server with perf: what scripts/bench-peers --floor and scripts/bench-udp --floor
# read the kernel's own protocol work per message from.
PERF_HZ = 1999
PERF_LINE_RE = re.compile(r"^\s*([0-9.]+)%\s+([0-9.]+)%\s+\[k\]\s+(\S+)\s*$")
# One frame of `perf script -F ip,sym,dso`: address, symbol (which may hold parentheses), and
# the object in parentheses (which cannot).
PERF_FRAME_RE = re.compile(r"^\s*([0-9a-f]+)\s+(.*?)\s+\(([^()]*)\)\s*$")


def start_perf(pid, path):
    """`perf record -g` of process `pid` into `path`, until finish_perf."""
    return subprocess.Popen(["perf", "record", "-q", "-F", str(PERF_HZ), "-g", "-p", str(pid),
                             "-o", str(path)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def finish_perf(perf, timeout=20.0):
    """SIGINT ends `perf record` cleanly (it writes its header on the way out)."""
    perf.send_signal(signal.SIGINT)
    try:
        perf.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        perf.kill()
        perf.wait()
    err = perf.stderr.read().decode(errors="replace").strip()
    if perf.returncode not in (0, -signal.SIGINT):
        raise RuntimeError(f"perf record exited with {perf.returncode}: {err[:300]}")


def perf_report(path, children, sort):
    """The lines of `perf report --stdio -g none` of `path`, `children` being "--children"
    (inclusive shares) or "--no-children" (self), sorted by `sort` (sym, dso)."""
    out = subprocess.run(["perf", "report", "-i", str(path), children, "--stdio",
                          "-g", "none", "--sort", sort],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"perf report failed: {out.stderr.strip()[:300]}")
    return out.stdout.splitlines()


def kernel_shares(path, symbols):
    """{kernel symbol: fraction of the samples in `path` inside it (inclusive)} for those of
    `symbols` that appear, from `perf report --children`."""
    shares = {}
    for line in perf_report(path, "--children", "sym"):
        m = PERF_LINE_RE.match(line)
        if m and m.group(3) in symbols:
            shares[m.group(3)] = float(m.group(1)) / 100
    return shares


# Where a server's CPU goes outside the kernel's protocol work, by the path a sample's stack
# took into the kernel; the first that matches, in this order. "io_uring" holds everything
# under io_uring_enter, its task work and its workers, the socket layer of its operations
# included; the readiness calls and "other system calls" (read, write, send, recv, accept,
# close: their entry and exit, descriptor lookup and socket layer) split the same work for a
# readiness server. An interrupt taken inside a call counts in that call's path: the last
# holds interrupts taken in user space, page faults and the rest.
OVERHEAD_PATHS = ("user space", "io_uring", "epoll, poll, select", "other system calls",
                  "interrupts and the rest of the kernel")
READINESS_CALLS = ("do_sys_poll", "do_poll", "do_select", "core_sys_select")
SYSCALL_ENTRIES = ("do_syscall_64", "entry_SYSCALL", "el0_svc", "invoke_syscall")


def overhead_path(frames, work):
    """The OVERHEAD_PATHS entry of one perf sample, or None when it lies inside `work` (a
    set of kernel symbols: the protocol work). `frames`: (address, symbol) from the sampled
    instruction outwards; kernel addresses have the top bit set.

    >>> k = 0xffffffff81000000
    >>> tcp = {"tcp_sendmsg", "tcp_recvmsg"}
    >>> overhead_path([(k, "tcp_ack"), (k, "tcp_sendmsg"), (k, "io_send")], tcp) is None
    True
    >>> overhead_path([(0x7f0000001000, "[unknown]")], tcp)
    'user space'
    >>> overhead_path([(k, "fget"), (k, "io_submit_sqes"), (k, "__do_sys_io_uring_enter"),
    ...                (k, "do_syscall_64")], tcp)
    'io_uring'
    >>> overhead_path([(k, "sock_poll"), (k, "ep_item_poll"), (k, "do_epoll_wait"),
    ...                (k, "do_syscall_64")], tcp)
    'epoll, poll, select'
    >>> overhead_path([(k, "fdget"), (k, "__sys_recvfrom"), (k, "do_syscall_64")], tcp)
    'other system calls'
    >>> overhead_path([(k, "io_schedule"), (k, "folio_wait_bit"), (k, "filemap_fault")], tcp)
    'interrupts and the rest of the kernel'
    """
    kernel = [sym for addr, sym in frames if addr >= 1 << 63]
    if not frames or frames[0][0] < 1 << 63:
        return "user space"
    if any(sym in work for sym in kernel):
        return None
    if any("io_uring" in s or s.startswith(("tctx_task_work", "io_wq_", "io_worker"))
           for s in kernel):
        return "io_uring"
    if any("epoll" in s or s.startswith("ep_") or s in READINESS_CALLS for s in kernel):
        return "epoll, poll, select"
    if any(s.startswith(SYSCALL_ENTRIES) for s in kernel):
        return "other system calls"
    return "interrupts and the rest of the kernel"


def overhead_paths(path, work):
    """(fraction of the samples in `path` inside the kernel symbols `work`, inclusive;
    {OVERHEAD_PATHS entry: fraction} for the rest, split by the path each took), from one
    `perf script` pass, each sample weighted by its period as `perf report` weighs it."""
    out = subprocess.run(["perf", "script", "-i", str(path), "--no-inline",
                          "-F", "period,ip,sym,dso"],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"perf script failed: {out.stderr.strip()[:300]}")
    weights = dict.fromkeys(OVERHEAD_PATHS, 0)
    inside = total = 0
    for sample in out.stdout.split("\n\n"):
        period, frames = None, []
        for line in sample.splitlines():
            m = PERF_FRAME_RE.match(line)
            if m:
                frames.append((int(m.group(1), 16), m.group(2)))
            elif line.strip().isdigit() and period is None:
                period = int(line)
        if not frames or not period:
            continue
        total += period
        where = overhead_path(frames, work)
        if where is None:
            inside += period
        else:
            weights[where] += period
    if total == 0:
        raise RuntimeError(f"no samples in {path}")
    return inside / total, {k: v / total for k, v in weights.items()}


def plot(png, title, xlabel, ylabel, series, logx=False, logy=False, style="linespoints",
         xtics=None):
    """series: [(title, [(x, y), ...]), ...] drawn into `png` with gnuplot; `xtics`:
    [(label, x), ...] to name the x positions (e.g. a 0 on an otherwise log scale)."""
    with tempfile.TemporaryDirectory() as tmp:
        plots = []
        for i, (name, points) in enumerate(series):
            data = Path(tmp) / f"s{i}.dat"
            data.write_text("".join(f"{x} {y}\n" for x, y in points))
            plots.append(f"'{data}' using 1:2 with {style} title '{name}'")
        script = "\n".join([
            "set terminal png size 800,480",
            f"set output '{png}'",
            f"set title '{title}'",
            f"set xlabel '{xlabel}'",
            f"set ylabel '{ylabel}'",
            "set grid",
            "set key outside right",
            "set logscale x" if logx else "",
            "set logscale y" if logy else "",
            "set xtics (" + ", ".join(f'"{l}" {x}' for l, x in xtics) + ")" if xtics else "",
            "plot " + ", ".join(plots),
        ])
        subprocess.run(["gnuplot"], input=script, text=True, check=True)


def verdict(claim, confirmed, detail):
    line = f"verdict: {'CONFIRMED' if confirmed else 'REFUTED'}: {claim}: {detail}"
    print(line, flush=True)
    return line


def paired_ratios(runs_a, runs_b, key):
    """Ratios a/b of `key`, one per repetition both servers completed. Each run carries its
    repetition as "rep": two servers of one repetition ran back to back (interleaved), so
    the machine's drift between repetitions cancels out of their ratio.

    >>> a = [dict(rep=0, cpu=2.0), dict(rep=1, cpu=3.0), dict(rep=2, cpu=5.0)]
    >>> b = [dict(rep=0, cpu=4.0), dict(rep=2, cpu=5.0)]
    >>> paired_ratios(a, b, "cpu")
    [0.5, 1.0]
    >>> paired_ratios([dict(cpu=1.0)], b, "cpu")  # a run without its repetition pairs with none
    []
    """
    by_rep = {r["rep"]: r[key] for r in runs_b if "rep" in r and r[key]}
    return [r[key] / by_rep[r["rep"]] for r in runs_a if r.get("rep") in by_rep]


def median_interval(values, confidence=0.90):
    """(median, low, high): the median and the narrowest interval between order statistics
    that covers the true median with at least `confidence`, whatever the distribution
    (the sign test's binomial). (median, None, None) when there are too few values for
    that: at least 5 for 90 %.

    >>> median_interval([1.0, 0.9, 1.1, 0.95, 1.05])
    (1.0, 0.9, 1.1)
    >>> median_interval([3, 1, 2])
    (2, None, None)
    >>> median_interval(range(1, 11))  # the 2nd and 9th of 10 cover 97.9 %
    (5.5, 2, 9)
    >>> median_interval([])
    (None, None, None)
    """
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        return None, None, None
    k = 0  # the interval runs from the k-th smallest to the k-th largest
    for cand in range(1, n // 2 + 1):
        outside = 2 * sum(math.comb(n, i) for i in range(cand)) / 2 ** n
        if 1 - outside < confidence:
            break
        k = cand
    if k == 0:
        return statistics.median(xs), None, None
    return statistics.median(xs), xs[k - 1], xs[n - k]


def ratio_verdict(low, high, limit, at_most=True):
    """A target on a ratio, judged on its interval: "met" or "missed" when the whole
    interval is on one side of `limit` (at_most: the ratio must be <= limit, else >=),
    "within noise" when it straddles it.

    >>> ratio_verdict(0.90, 0.98, 1.0), ratio_verdict(0.95, 1.04, 1.0)
    ('met', 'within noise')
    >>> ratio_verdict(1.01, 1.10, 1.0), ratio_verdict(1.01, 1.10, 1.0, at_most=False)
    ('missed', 'met')
    >>> ratio_verdict(None, None, 1.0)
    'too few reps'
    """
    if low is None:
        return "too few reps"
    if at_most:
        return "met" if high <= limit else "missed" if low > limit else "within noise"
    return "met" if low >= limit else "missed" if high < limit else "within noise"


def paired_cell(ours, theirs, key, at_most=True):
    """One table cell: `ours` against `theirs` on `key`, paired by repetition, as the median
    ratio, its 90 % interval and the target (<= 1.0x, or >= with at_most=False) judged on it;
    "-" when no repetition pairs up.

    >>> runs = [dict(rep=i, cpu=c) for i, c in enumerate([0.9, 0.8, 0.95, 0.85, 0.9])]
    >>> paired_cell(runs, [dict(rep=i, cpu=1.0) for i in range(5)], "cpu")
    '0.90x [0.80, 0.95] met'
    >>> paired_cell(runs, [], "cpu")
    '-'
    """
    median, low, high = median_interval(paired_ratios(ours, theirs, key))
    if median is None:
        return "-"
    return f"{fmt_interval(median, low, high)} {ratio_verdict(low, high, 1.0, at_most)}"


def fmt_interval(median, low, high, digits=2):
    """'0.97x [0.91, 1.02]', or the median alone without an interval.

    >>> fmt_interval(0.97, 0.912, 1.02), fmt_interval(1.0, None, None)
    ('0.97x [0.91, 1.02]', '1.00x')
    """
    if median is None:
        return "-"
    if low is None:
        return f"{median:.{digits}f}x"
    return f"{median:.{digits}f}x [{low:.{digits}f}, {high:.{digits}f}]"


def table(header, rows):
    """A markdown table."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


class Output:
    """Where an experiment's plot and section go: docs/ with --record, else a temporary
    directory that is left for inspection and named on stderr."""

    def __init__(self, args, name):
        self.name = name
        self.record = args.record and not args.smoke
        if self.record:
            self.dir = ROOT / "docs" / "experiments"
        else:
            self.dir = Path(tempfile.mkdtemp(prefix=f"netkit-{name}-"))
        self.dir.mkdir(parents=True, exist_ok=True)

    def png(self, suffix=""):
        return self.dir / f"{self.name}{suffix}.png"

    def section(self, markdown):
        """Writes `markdown` as this experiment's section (replacing an older one)."""
        if not self.record:
            (self.dir / f"{self.name}.md").write_text(markdown + "\n")
            log(f"results in {self.dir} (--record writes them into {DOC.relative_to(ROOT)})")
            return
        write_section(DOC, f"experiment:{self.name}", markdown, new_doc=(
            "# Experiments: the course's claims, measured\n\n"
            "Each section is written by its script in experiments/ (`--record`); re-run one "
            "to refresh it. Figures come from the run whose date and machine each section "
            "states.\n"))


def write_section(doc, marker, markdown, new_doc=""):
    """Writes `markdown` into `doc` between <!-- MARKER --> and <!-- /MARKER -->, replacing
    what an earlier run wrote there (appended the first time; `new_doc` starts a file that
    does not exist yet). Used by the experiments and by scripts/bench-peers --record."""
    begin, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    text = doc.read_text() if doc.exists() else new_doc
    block = f"{begin}\n{markdown.rstrip()}\n{end}"
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc.write_text(text)
    log(f"recorded in {doc.relative_to(ROOT)}")


# A server and its process tree, from /proc (the fork model serves in children, --processes in
# workers): its members, memory and descriptors (its CPU over a run: `netkit bench --server-pid`).
# children_of is shared with scripts/io-models, cpu_seconds with scripts/chat-fanout.

def children_of(pid):
    """Children of every thread of `pid` (from /proc; [] once it is gone)."""
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/children") as f:
                out += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def cpu_seconds(pid):
    """utime+stime of `pid`, all its threads (not its children), in seconds."""
    return cpu_ticks(pid) / CLK_TCK


def tree_pids(pid):
    """`pid` and its live descendants."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo += children_of(p)
    return pids


def tree_rss_kib(pid, field="VmRSS"):
    """The sum of `field` (VmRSS, RssAnon, ...) from /proc/PID/status over the tree, KiB."""
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                total += next((int(l.split()[1]) for l in f if l.startswith(field + ":")), 0)
        except OSError:
            pass
    return total


def tree_fds(pid):
    """Open descriptors over the tree (a server's connections, plus what it held before)."""
    total = 0
    for p in tree_pids(pid):
        try:
            total += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            pass
    return total


def pinned(cpu, argv):
    """`argv` run on CPU `cpu` (taskset), or unpinned on a machine with fewer CPUs."""
    return ((["taskset", "-c", str(cpu)] if (os.cpu_count() or 1) > cpu else [])
            + [str(a) for a in argv])
