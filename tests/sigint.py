"""Run code in a fresh Python, interrupt it with SIGINT, and report how it ended (for Ctrl-C tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def interrupt_child(code: str, *args: str, delay: float) -> tuple[int, str, str, float]:
    """Start ``python -c code *args`` with the repository on its path, wait for its ``started`` line, send
    SIGINT ``delay`` seconds later (asserting it still runs), and return its exit code, stdout, stderr and
    the seconds it took to stop (at most 30)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "started", (line, proc.stderr.read() if proc.stderr else "")
        time.sleep(delay)
        assert proc.poll() is None, "the repair ended before the interrupt"
        proc.send_signal(signal.SIGINT)
        t = time.perf_counter()
        out, err = proc.communicate(timeout=30)
        stopped = time.perf_counter() - t
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err, stopped
