"""One real gateway + vLLM (CPU build) per test session, on the tiny offline model, shared by all tests.

The fixtures are registered for the whole of tests/ by tests/conftest.py, so tests/integration and tests/e2e
(the browser tests) share the one session gateway and engine when pytest runs them together.

The gateway runs as users run it: ``python -m gateway serve --model DIR`` in a child process, which spawns
and supervises vLLM. Tests talk to it with the official ``openai`` client. Start-up takes 40-100 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from adapters.supervisor import free_port, vllm_installed
from models_store.tiny_model import TinyModelSpec, cached_tiny_model
from tests.support import health

API_KEY = "test-key-integration"
MODEL = "tiny"
# A LoRA adapter trained at session start by `python -m finetune run` (a few seconds on the tiny base) and
# served with `--adapter ADAPTER=DIR`: tests/integration/test_adapters.py.
ADAPTER = "colours-json"
# The tiny base is briefly pre-trained on captions so it really looks at images ("The image is red.").
TINY_SPEC = TinyModelSpec(pretrain_steps=300)
START_TIMEOUT_S = 900


@dataclass
class GatewayProcess:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    data_dir: Path
    model_dir: Path

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def health(self) -> httpx.Response:
        return httpx.get(self.url + "/health", timeout=5)


def wait_healthy(gw: GatewayProcess, timeout_s: float) -> None:
    if health.wait_healthy(gw.url, timeout_s, gw.proc):
        return
    if gw.proc.poll() is not None:
        pytest.fail(f"gateway exited with {gw.proc.returncode} during start-up:\n{gw.log_tail()}")
    pytest.fail(f"gateway not healthy after {timeout_s} s:\n{gw.log_tail()}")


def start_engine_gateway(
    data_dir: Path, engine_url: str, key: str, *args: str, model_dir: Path = Path(), **env: str
) -> GatewayProcess:
    """A test's own gateway (``vlmgw serve --engine-url``: it starts in seconds) in front of an engine,
    usually the session's, with its own data folder, static key, extra ``args`` and environment; healthy."""
    port = free_port()
    log_path = data_dir / f"gateway-{port}.log"
    environment = {**os.environ, "VLMGW_DATA_DIR": str(data_dir), **env}
    cmd = [sys.executable, "-m", "gateway", "serve", "--engine-url", engine_url, "--port", str(port),
           "--api-key", key, *args]  # fmt: skip
    data_dir.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=environment, start_new_session=True
        )
    gw = GatewayProcess(f"http://127.0.0.1:{port}", proc, log_path, data_dir, model_dir)
    wait_healthy(gw, 120)
    return gw


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    return cached_tiny_model(TINY_SPEC)


@pytest.fixture(scope="session")
def trained_adapter(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """Train the colour-JSON task (tests/support/colour_task.py) with the finetune CLI; the adapter dir."""
    import msgspec

    from finetune.spec import HyperParameters, TrainSpec
    from tests.support import colour_task

    root = tmp_path_factory.mktemp("adapter-training")
    spec = TrainSpec(
        base_model=str(tiny_model_dir),
        served_base_name=MODEL,
        output_dir=str(root / "out"),
        examples=colour_task.examples(root / "train", 4, seed=1),
        hyperparameters=HyperParameters(max_steps=60),
    )
    (root / "spec.json").write_bytes(msgspec.json.encode(spec))
    cmd = [sys.executable, "-m", "finetune", "run", str(root / "spec.json"), "--quiet"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        pytest.fail(f"finetune failed ({run.returncode}):\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}")
    return root / "out" / "adapter"


@pytest.fixture(scope="session")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, trained_adapter: Path
) -> Iterator[GatewayProcess]:
    if not vllm_installed():
        pytest.fail("vLLM is not installed: run `uv sync --extra cpu` (the README's test command does)")
    port = free_port()
    data_dir = tmp_path_factory.mktemp("gateway-data")
    log_path = data_dir / "gateway.log"
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLMGW_DATA_DIR": str(data_dir),
        # Tests only: let the gateway fetch media from the tests' own loopback servers (blocked by default),
        # and give up on a slow server quickly.
        "VLMGW_MEDIA_FETCH_ALLOW": "127.0.0.0/8",
        "VLMGW_MEDIA_FETCH_TIMEOUT_S": "3",
    }
    cmd = [
        sys.executable,
        "-m",
        "gateway",
        "serve",
        "--model",
        str(tiny_model_dir),
        "--served-model-name",
        MODEL,
        "--port",
        str(port),
        "--api-key",
        API_KEY,
        "--adapter",
        f"{ADAPTER}={trained_adapter}",
        "--",
        "--max-model-len",
        "2048",
        "--max-num-seqs",
        "32",
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    gw = GatewayProcess(f"http://127.0.0.1:{port}", proc, log_path, data_dir, tiny_model_dir)
    try:
        wait_healthy(gw, START_TIMEOUT_S)
        yield gw
    finally:
        stop_gateway(gw)


def stop_gateway(gw: GatewayProcess) -> None:
    health.stop_group(gw.proc)  # the engine and trainers have their own groups: the gateway stops them


def keys_cli(gateway: GatewayProcess, *argv: str) -> str:
    """Run `vlmgw keys ARGV` on the session gateway's database (as a user would); its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "keys", *argv, "--data-dir", str(gateway.data_dir)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.strip()


@pytest.fixture(scope="session")
def gateway_url(gateway: GatewayProcess) -> str:
    return gateway.url


@pytest.fixture(scope="session")
def client(gateway_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway_url + "/v1", api_key=API_KEY, max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def aclient(gateway_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway_url + "/v1", api_key=API_KEY, max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def auth_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}
