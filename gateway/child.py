"""``urbanpulse gateway`` as a child process: what a fault test or a load test SIGKILLs like a crash."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from urbanpulse.localstack import ChildProcess, ServerError

__all__ = ["GatewayProcess"]


class GatewayProcess:
    """``urbanpulse gateway`` in a child process, so a test or a load test can SIGKILL it like a crash.

    ``env`` adds ``URBANPULSE_*`` settings for the child; its log goes to ``log``.
    """

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = {**os.environ, **env}
        self.log = Path(log)
        self._process = ChildProcess()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process.running

    def start(self) -> None:
        self._process.spawn([sys.executable, "-m", "urbanpulse", "gateway"], self.log, None, env=self.env)

    def wait_subscribed(self, count: int = 1, timeout: float = 30.0) -> None:
        """Wait until the gateway has subscribed ``count`` times in all (its session exists from then on)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log.exists() and self.log.read_text(errors="replace").count(" subscribed to ") >= count:
                return
            if not self.running:
                break
            time.sleep(0.05)
        msg = "gateway did not subscribe:\n" + self.log.read_text(errors="replace")[-2000:]
        raise ServerError(msg)

    def kill(self) -> None:
        self._process.signal(signal.SIGKILL)

    def stop(self) -> None:
        """SIGINT: the gateway flushes, acknowledges what it committed and exits."""
        self._process.signal(signal.SIGINT)

    def peak_memory_kib(self) -> int | None:
        """The child's peak resident memory (VmHWM), while it runs."""
        if self.pid is None:
            return None
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return None
