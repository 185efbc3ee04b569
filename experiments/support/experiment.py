"""What every experiment in experiments/ shares: the common options, starting and
stopping netkit servers, the machine line, gnuplot plots, the verdict line, and writing
an experiment's section of docs/experiments.md (between its own markers, so experiments
can be re-run one at a time)."""

import argparse
import datetime
import os
import platform
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "experiments.md"
URI_RE = re.compile(r"listening on (\S+)")


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
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip() or "unknown"
    return (f"{datetime.date.today().isoformat()}, Linux {platform.release()}, "
            f"{os.cpu_count()} × {cpu}, netkit {rev}")


class Server:
    """A netkit server process; `uri` is what it printed after 'listening on'."""

    def __init__(self, argv, timeout=10.0, **popen):
        self.argv = [str(a) for a in argv]
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, **popen)
        self.uri = None
        self.out = ""
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
        stdout after the 'listening on' line is left in self.out)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        out, err = self.proc.communicate()
        self.out = out or ""
        return err or ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def plot(png, title, xlabel, ylabel, series, logx=False, logy=False, style="linespoints"):
    """series: [(title, [(x, y), ...]), ...] drawn into `png` with gnuplot."""
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
            "plot " + ", ".join(plots),
        ])
        subprocess.run(["gnuplot"], input=script, text=True, check=True)


def verdict(claim, confirmed, detail):
    line = f"verdict: {'CONFIRMED' if confirmed else 'REFUTED'}: {claim}: {detail}"
    print(line, flush=True)
    return line


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
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
