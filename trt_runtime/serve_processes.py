"""dcn-serve's host, ports and processes: the checks made before tritonserver starts (an IPv4 host, ports free
now: tritonserver would only time out), and the processes a stopped server leaves behind (its Python backend
stubs), found in /proc and reaped. Linux only, as tritonserver is."""
from __future__ import annotations

import ipaddress
import os
import signal
import socket
import time
from pathlib import Path
from typing import Optional

from dcn_base.errors import DcnError


class ServeEnvironmentError(DcnError):
    """PyTriton / tritonserver missing or unusable (exit code 2)."""


def check_host(host: str) -> str:
    """--host must be an IPv4 address: Triton's HTTP server binds what inet_addr() reads (a name such as
    localhost, or an IPv6 address, never becomes ready), and the port checks here are IPv4."""
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        raise DcnError(f"--host {host!r}: expected an IPv4 address such as 127.0.0.1 (0.0.0.0: every interface); "
                       "host names and IPv6 are not supported") from None
    return host


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now (for port 0 in the options, and for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def check_port(host: str, port: int, what: str) -> None:
    """Fail now, in one line, when something listens on ``port`` (tritonserver would only time out)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as err:
            raise ServeEnvironmentError(f"{what} {port}: cannot listen on {host}:{port} ({err.strerror or err}); "
                                        "choose another port (0: a free one)") from None


def _children_table() -> dict[int, list[int]]:
    """{parent id: ids of its children}, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def descendants(pid: int, children: Optional[dict[int, list[int]]] = None) -> list[int]:
    """Ids of the processes below ``pid`` (from /proc; empty where there is none), deepest first."""
    children = _children_table() if children is None else children
    found: list[int] = []

    def walk(p: int) -> None:
        for c in children.get(p, []):
            walk(c)
            found.append(c)

    walk(pid)
    return found


def _start_time(pid: int) -> Optional[str]:
    """The process's start time (field 22 of /proc/PID/stat): tells a reused id from the process we saw."""
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        return None if fields[0] == "Z" else fields[19]
    except (OSError, IndexError):
        return None


def _reap(spawned: dict[int, Optional[str]], grace_s: float = 5.0) -> None:
    """After the server stopped: give the processes it had spawned ``grace_s`` to exit, then SIGKILL them.
    (A Python backend stub can outlive tritonserver when Triton's exit timeout expires.)"""
    deadline = time.monotonic() + grace_s
    while True:
        alive = [pid for pid, start in spawned.items() if start is not None and _start_time(pid) == start]
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _servers_spawned(before: set[int]) -> dict[int, Optional[str]]:
    """The tritonserver processes this process started since ``before`` (its children then), and everything
    below them (the Python backend stubs), with their start times: what stop() may reap. Other children of
    this process (a host program's own, multiprocessing's resource tracker) are left alone."""
    table = _children_table()
    found: list[int] = []
    for pid in table.get(os.getpid(), []):
        if pid in before:
            continue
        try:
            name = (Path("/proc") / str(pid) / "comm").read_text().strip()
        except OSError:
            continue
        if name == "tritonserver":
            found += [pid, *descendants(pid, table)]
    return {pid: _start_time(pid) for pid in found}
