"""Fixtures shared by every test directory: the one session gateway + real vLLM (see session_gateway.py).

Defined once here so tests/integration and tests/e2e use the same engine in one pytest run; a directory's own
conftest may override a name (tests/unit has its own ``client`` over a fake engine).
"""

from tests.support.session_gateway import (  # noqa: F401 - pytest finds fixtures by name in this module
    aclient,
    auth_headers,
    client,
    gateway,
    gateway_url,
    tiny_model_dir,
    trained_adapter,
)
