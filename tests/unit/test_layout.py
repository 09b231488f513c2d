"""The runtime stays a thing a newcomer reads in a sitting: a mechanism per module, none
long, and none pulling in the operator tools' libraries (CLI, HTTP client, AsyncAPI)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "services" / "runtime"
MAX_LINES = 330  # "about 300"
OPERATOR_LIBRARIES = ("typer", "click", "httpx", "services.ops", "matplotlib")
TRANSITIVE = ("typer", "httpx", "services.ops", "matplotlib")


def test_no_runtime_module_is_long():
    long = {
        p.name: n
        for p in RUNTIME.glob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long


def test_runtime_modules_import_no_operator_library():
    for path in RUNTIME.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert not name.startswith(OPERATOR_LIBRARIES), (path.name, name)
                assert "specification" not in name, (path.name, name)  # AsyncAPI


def test_a_running_service_loads_none_of_them():
    """What a service process imports, transitively. Libraries bring their own (FastStream
    its AsyncAPI models, uvicorn click); ours are checked above."""
    code = (
        "import sys\n"
        "import services.runtime.runner\n"
        "from services.registry import SERVICE_DEFS\n"
        f"bad = [m for m in sys.modules if m.startswith({TRANSITIVE!r})]\n"
        "print(','.join(sorted(bad)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", out.stdout


def test_the_command_a_service_runs_under_loads_no_plotting_library():
    """Services run as ``linkwell run <service>``: the command loads matplotlib only to
    draw a report (it cost every service process about 40 MiB)."""
    code = (
        "import sys\n"
        "import services.ops.cli\n"
        "print(','.join(m for m in ('matplotlib', 'numpy', 'PIL', 'playwright') "
        "if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", out.stdout
