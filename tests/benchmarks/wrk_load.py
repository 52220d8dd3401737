"""Drive a server with wrk (when installed): the same closed loop as load.py, in C, with a
generated Lua script giving every request a fresh JSON-RPC id."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from load import Result

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def available() -> bool:
    return shutil.which("wrk") is not None


# Each run's ids start a block above the last run's (see load.Requests).
_RUNS = itertools.count(1)


def _lua(path: str, body: bytes, headers: dict[str, str]) -> str:
    head, _, tail = body.replace(b'"id":1', b'"id": 1').partition(b'"id": 1')
    lines = [f'local head = [==[{head.decode()}"id": ]==]', f"local tail = [==[{tail.decode()}]==]"]
    lines.append("local headers = {}")
    lines += [f"headers[ [==[{name}]==] ] = [==[{value}]==]" for name, value in headers.items()]
    lines += [
        f"local n = {next(_RUNS) * 10**8}",
        "request = function()",
        "  n = n + 1",
        f'  return wrk.format("POST", [==[{path}]==], headers, head .. n .. tail)',
        "end",
        # The far tail, which --latency leaves out (microseconds).
        "done = function(summary, latency, requests)",
        '  io.write(string.format("tail: %d %d\\n", latency:percentile(99.9), latency.max))',
        "end",
    ]
    return "\n".join(lines) + "\n"


def run(
    port: int, path: str, body: bytes, headers: dict[str, str], *, connections: int, seconds: float
) -> Result:
    """One wrk run (one thread); latencies are wrk's own percentiles."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_lua(path, body, headers))
    try:
        argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s"]
        argv += [script.name, f"http://127.0.0.1:{port}{path}"]
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    finally:
        Path(script.name).unlink()
    return _parse(out, seconds)


def _parse(out: str, seconds: float) -> Result:
    result = Result(seconds=seconds)
    total = re.search(r"(\d+) requests in", out)
    result.requests = int(total.group(1)) if total else 0
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    result.errors = int(errors.group(1)) if errors else 0
    result.reconnects = sum(map(int, sockets.groups())) if sockets else 0
    result.percentiles = {
        float(p): float(v) * _UNITS[u]
        for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    }
    tail = re.search(r"^tail: (\d+) (\d+)$", out, re.M)
    if tail:
        result.percentiles[99.9] = int(tail.group(1)) / 1e6
        result.percentiles[100.0] = int(tail.group(2)) / 1e6
    return result
