"""The dependency direction the design fixes: gateway -> finetune -> models_store; nothing imports gateway.

Read from the source (every ``import``, also those inside functions), so a lazy import breaks it too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def imports_of(package: str) -> dict[str, set[str]]:
    return {p.name: imported(p) for p in sorted((ROOT / package).glob("*.py"))}


def test_models_store_imports_neither_finetune_nor_gateway() -> None:
    for name, modules in imports_of("models_store").items():
        bad = {m for m in modules if m.split(".")[0] in ("finetune", "gateway", "adapters")}
        assert not bad, f"models_store/{name} imports {sorted(bad)}"


def test_finetune_imports_no_gateway_and_not_the_demo_model() -> None:
    for name, modules in imports_of("finetune").items():
        bad = {
            m
            for m in modules
            if m.split(".")[0] in ("gateway", "adapters") or m.startswith("models_store.tiny")
        }
        assert not bad, f"finetune/{name} imports {sorted(bad)}"


def test_the_tiny_models_files_import_one_way() -> None:
    assert "models_store.tiny_pretrain" in imported(ROOT / "models_store" / "tiny_model.py")
    assert not {
        m for m in imported(ROOT / "models_store" / "tiny_pretrain.py") if m.startswith("models_store")
    }


def test_the_variable_definition_imports_without_torch() -> None:
    code = "import sys, finetune.variables, gateway.platform_api.schemas; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
