"""A 1 GiB ``http.response.pathsend`` at flat memory: the server's resident memory while it
sends a file of 1 GiB (sparse, so the disk is not the limit) to a client that reads it all.

On demand (not in the test suite)::

    python -m reliability.pathsend_rss [--size-mib 1024] [--backend asyncio|trio]

It starts ``python -m refserver`` on a free port with the app below, reads the response to
its end while sampling the server's VmRSS from ``/proc`` every 50 ms, and prints the RSS before
the request, the peak during it, and the bytes received. asyncio sends the file with
``os.sendfile``; trio (and TLS) reads it 256 KiB at a time, each written before the next.

Measured (2 cores shared with other work, Linux, CPython 3.11), 1 GiB, two runs each; the
times move with the machine's load, the memory does not:

- asyncio (sendfile): RSS before 28.7 MiB, peak 28.8 and 28.7 MiB; 1073741824 bytes in 19.9 and 4.6 s.
- trio (bounded reads): RSS before 31.8 and 31.9 MiB, peak 32.1 and 32.2 MiB; 1073741824 bytes in
  3.8 and 6.2 s.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

PATH_ENV = "PATHSEND_RSS_FILE"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Send the file named by $PATHSEND_RSS_FILE with http.response.pathsend."""
    if scope["type"] != "http":
        return
    path = os.environ[PATH_ENV]
    size = os.path.getsize(path)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(size).encode())]})
    await send({"type": "http.response.pathsend", "path": path})


def rss_mib(pid: int) -> float:
    """The process's resident set, in MiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--backend", default="asyncio", choices=("asyncio", "trio"))
    args = parser.parse_args()
    with tempfile.NamedTemporaryFile(suffix=".bin") as file:
        file.truncate(args.size_mib * 1024 * 1024)  # sparse: reads cost no disk
        port = free_port()
        env = {**os.environ, PATH_ENV: file.name}
        command = [sys.executable, "-m", "refserver", "reliability.pathsend_rss:app", "--port", str(port)]
        command += ["--backend", args.backend, "--lifespan", "off", "--no-access-log", "--log-level", "warning"]
        server = subprocess.Popen(command, env=env)
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            before = rss_mib(server.pid)
            peak = [before]
            done = threading.Event()

            def sample() -> None:
                while not done.wait(0.05):
                    peak[0] = max(peak[0], rss_mib(server.pid))

            sampler = threading.Thread(target=sample)
            sampler.start()
            started = time.monotonic()
            received = 0
            with socket.create_connection(("127.0.0.1", port)) as client:
                client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                head = b""
                while b"\r\n\r\n" not in head:
                    head += client.recv(65536)
                received = len(head.partition(b"\r\n\r\n")[2])
                while chunk := client.recv(1 << 20):
                    received += len(chunk)
            elapsed = time.monotonic() - started
            done.set()
            sampler.join()
        finally:
            server.terminate()
            server.wait(10)
    print(f"{args.backend}: RSS before {before:.1f} MiB, peak {peak[0]:.1f} MiB, {received} bytes in {elapsed:.1f} s")


if __name__ == "__main__":
    main()
