"""A local Ray head for a test: on 127.0.0.1 only, with a job API (dashboard), stopped after by its own ids.

``ray start --head --block`` runs in a session of its own; every Ray process it starts carries this head's
unique temporary folder on its command line, so stopping kills exactly those processes (never other Ray
clusters on the machine). ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps Ray from swapping 127.0.0.1 for the
machine's outward address (``services.resolve_ip_for_localhost``), so all its traffic stays on loopback.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from adapters.supervisor import free_port


def _processes_with(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(entry.name))
    return [pid for pid in pids if pid != os.getpid()]


@contextlib.contextmanager
def ray_head(env: dict[str, str], num_cpus: int = 2) -> Iterator[str]:
    """Start a head with ``env`` added to its (and its jobs') environment; yields the job API's URL."""
    temp = Path(tempfile.mkdtemp(prefix="vlmgw-ray-"))
    port, dashboard = free_port(), free_port()
    bin_dir = str(Path(sys.executable).parent)
    head_env = {**os.environ, **env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
                "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}  # fmt: skip
    command = [str(Path(bin_dir) / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
               "--port", str(port), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
               "--num-cpus", str(num_cpus), "--num-gpus", "0", "--disable-usage-stats",
               "--temp-dir", str(temp)]  # fmt: skip
    log = (temp / "ray-start.log").open("wb")
    proc = subprocess.Popen(
        command, env=head_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/api/jobs/", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Ray head did not start: {(temp / 'ray-start.log').read_text()[-2000:]}")
            time.sleep(1)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(30)
        for pid in _processes_with(str(temp)) + ([proc.pid] if proc.poll() is None else []):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        log.close()
