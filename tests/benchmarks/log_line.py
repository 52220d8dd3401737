"""Instructions per mcpd log line, counted by valgrind's callgrind (repeatable, unlike time):
one ``tool.call`` event with request, session, method and tool bound, as the daemon logs it
per call, written to /dev/null through ``mcpd.logs``.

    python tests/benchmarks/log_line.py [--lines 20000] [--per-pass 16] [--formats json,...]
        [--tree DIR]

Each format runs twice under callgrind, with ``--lines`` events and with none, and the
difference is divided by ``--lines``. ``--per-pass``: events logged between two scheduler
passes (1 is what c = 1 does, 16 about what c = 16 does). ``--tree``: mcpd from another
source tree (e.g. ``git archive <commit> mcpd | tar -x -C DIR``). Kernel time (the write(2)
calls themselves) is not counted.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from servers import _FROM_TREE  # noqa: E402


def child(lines: int, fmt: str, per_pass: int) -> None:
    """Log ``lines`` events inside a trio run, a checkpoint every ``per_pass`` of them."""
    import structlog
    import trio

    from mcpd.config import LoggingSettings
    from mcpd.logs import configure_logging

    with open(os.devnull, "w") as sink:
        configure_logging(LoggingSettings(format=fmt), stream=sink)  # type: ignore[arg-type]
        log = structlog.get_logger("mcpd.calls")

        async def main() -> None:
            structlog.contextvars.bind_contextvars(request_id=1, session="r-JBhhLq")
            structlog.contextvars.bind_contextvars(method="tools/call", tool="echo")
            log.info("tool.call", outcome="ok", duration_ms=0.04)  # the logger is cached
            for n in range(lines):
                log.info("tool.call", outcome="ok", duration_ms=0.042)
                if n % per_pass == 0:
                    await trio.lowlevel.checkpoint()

        trio.run(main)


def _instructions(args: argparse.Namespace, fmt: str, lines: int) -> int:
    inner = ["--child", str(lines), fmt, str(args.per_pass)]
    if args.tree is None:
        launch = [str(Path(__file__).resolve()), *inner]
    else:  # the tree's mcpd ahead of the editable install (see servers._FROM_TREE)
        code = _FROM_TREE.replace("from mcpd.cli import main", "import runpy").replace(
            "sys.argv[0] = 'mcpd'; sys.exit(main())",
            f"runpy.run_path({str(Path(__file__).resolve())!r}, run_name='__main__')",
        )
        launch = ["-c", code, str(args.tree), *inner]
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    done = subprocess.run(
        [*argv, sys.executable, *launch], capture_output=True, text=True, check=True
    )
    match = re.search(r"Collected : (\d+)", done.stderr)
    if match is None:
        raise RuntimeError(done.stderr[-2000:])
    return int(match.group(1))


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--per-pass", type=int, default=16)
    parser.add_argument("--formats", default="json,journal,console")
    parser.add_argument("--tree", type=Path)
    args = parser.parse_args()
    for fmt in args.formats.split(","):
        per_line = (_instructions(args, fmt, args.lines) - _instructions(args, fmt, 0)) / args.lines
        print(f"{args.tree or 'this checkout'} {fmt}: {per_line:,.0f} instructions per line")


if __name__ == "__main__":
    main()
