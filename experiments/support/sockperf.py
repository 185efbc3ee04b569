"""sockperf, the latency tool no one here wrote, as the scripts drive it: starting
`sockperf server` or a `netkit echo-server --codec sockperf` for its client, and reading
the percentiles it prints. Shared by scripts/sockperf-crosscheck and scripts/bench-latency.
sockperf reports latency as half the round trip (RTT/2): percentiles() doubles it."""

import re
import select
import socket
import subprocess
import time

PERCENTILE_RE = re.compile(r"percentile ([0-9.]+) =\s*([0-9.]+)")


def free_port(kind):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_bound(kind, port):
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
            return False
        except OSError:
            return True


def start(build, server, transport, cpu=None, extra=()):
    """Starts `server` ('sockperf' for sockperf's own, else a netkit echo-server model with
    --codec sockperf and the `extra` arguments), pinned to `cpu` if given; returns
    (process, host, port)."""
    kind = socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    if server == "sockperf":
        port = free_port(kind)
        argv = pin + ["sockperf", "server", "-i", "127.0.0.1", "-p", str(port)]
        if transport == "tcp":
            argv.append("--tcp")
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not port_bound(kind, port):
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                proc.wait()
                raise RuntimeError("sockperf server did not bind its port")
            time.sleep(0.02)
        return proc, "127.0.0.1", port
    proc = subprocess.Popen(
        pin + [str(build / "bin/netkit"), "echo-server", "--listen",
               f"{transport}://127.0.0.1:0", "--model", server, "--codec", "sockperf", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], 20)
    line = proc.stdout.readline() if ready else ""
    found = re.search(r"://([0-9.]+):(\d+)", line)
    if not found:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"netkit echo-server --model {server} did not start: {line!r}")
    return proc, found.group(1), int(found.group(2))


def stop(proc):
    """SIGTERM the server we started (by PID), SIGKILL if it does not exit."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def percentiles(output):
    """{percentile: round-trip µs} from sockperf's output (its RTT/2 doubled), e.g.
    {50.0: 58.6, 99.0: ..., 99.9: ...}; raises RuntimeError if it printed none."""
    found = {float(p): 2 * float(v) for p, v in PERCENTILE_RE.findall(output)}
    if not found:
        raise RuntimeError(f"sockperf reported no percentiles: {output[-400:]}")
    return found
