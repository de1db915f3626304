"""Ends an embedded Ray cluster's processes when the driver that started it dies without shutting it
down (SIGKILL, a crash): Ray's own agents would otherwise outlive it for a minute or more.

`python -m ecosystem.reaper PID` watches process PID: it remembers every descendant of PID it has
seen that still runs, and when PID dies it kills them. When its standard input closes while PID
lives on (a normal shutdown), it ends and kills nothing.
"""

from __future__ import annotations

import os
import select
import signal
import sys

import psutil

POLL_SECONDS = 0.5


def watch(driver_pid: int) -> None:
    driver = psutil.Process(driver_pid)
    descendants: set[psutil.Process] = set()
    # Until stdin closes (the driver shut Ray down, or died) or the driver is seen dead.
    while not select.select([sys.stdin], [], [], POLL_SECONDS)[0] and _alive(driver):
        # A union, never a fresh list: a walk taken while the driver dies misses the processes the
        # kernel has already moved away from it (Ray's agents, once their raylet is gone).
        try:
            current = set(driver.children(recursive=True))
        except psutil.Error:  # a child that ended during the walk: try again at the next poll
            continue
        descendants = {p for p in descendants if _alive(p)} | {p for p in current if p.pid != os.getpid()}
    if _alive(driver):
        return
    for process in descendants:
        try:
            if process.is_running():  # the same process: psutil checks its start time, not only its PID
                process.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


if __name__ == "__main__":
    watch(int(sys.argv[1]))
