"""The runtime stays a thing a newcomer reads in a sitting: a mechanism per module, none
long, and none pulling in the operator tools' libraries (CLI, HTTP client, AsyncAPI).
The read side (services/readside) stays apart: it reads outcomes' reporting model, not
outcomes' code, and no service process loads it, its web framework or its plotting."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "services" / "runtime"
MAX_LINES = 330  # "about 300"
OPERATOR_LIBRARIES = ("typer", "click", "httpx", "services.ops", "matplotlib")
TRANSITIVE = (
    "typer", "httpx", "services.ops", "matplotlib", "services.readside", "starlette", "jinja2",
)  # fmt: skip
READSIDE = ROOT / "services" / "readside"
OUTCOMES = ROOT / "services" / "outcomes"
# what the read side may import of the rest of Linkwell: the contracts, the database
# helpers, and the pure definitions of the wellbeing instruments (ONS4 items and bands)
READSIDE_MAY_IMPORT = (
    "contracts",
    "services.readside",
    "services.runtime.db",
    # the dashboard's sessions: the pure account and rate-limit parts shared with the
    # gateway, the audit record, logging and settings
    "services.runtime.accounts",
    "services.runtime.ratelimit",
    "services.runtime.audit",
    "services.runtime.logs",
    "services.runtime.settings",
)
READSIDE_MAY_IMPORT_OF_OUTCOMES = ("services.outcomes.wellbeing",)


def imported(path: Path) -> list[str]:
    """Absolute names a module imports (relative ones resolved within its package)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                found.append(f"{base}.{node.module}" if node.module else base)
            else:
                found.append(node.module or "")
    return found


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
        "print(','.join(m for m in ('matplotlib', 'numpy', 'PIL', 'playwright', 'starlette', "
        "'jinja2') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", out.stdout


def test_the_entry_knows_every_service_by_name():
    from services.ops.main import SERVICES, one_service
    from services.registry import SERVICE_DEFS

    assert set(SERVICES) == set(SERVICE_DEFS)
    assert one_service(["run", "intake"]) == "intake"
    assert one_service(["run", "all"]) is None  # the supervisor: the full command line
    assert one_service(["run", "intake", "--help"]) is None


def test_a_service_process_loads_only_its_own_code_and_hashes_nothing_at_start():
    """``linkwell run <service>`` imports that service's app alone: no other service, no
    operator command; and no password is hashed on import (argon2id takes 64 MiB: it set
    every service's peak memory)."""
    for name in ("intake", "notify", "audit"):
        code = (
            "import sys\n"
            f"import services.{name}.app\n"
            "import services.runtime.runner\n"
            "import services.runtime.accounts\n"  # the dashboard's and the pages' accounts
            "mine = {m.split('.')[1] for m in sys.modules if m.startswith('services.')}\n"
            f"print(sorted(mine - {{'runtime', {name!r}}}))\n"
            # this process's own peak (ru_maxrss would include the parent's, before exec)
            "print(int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) // 1024)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
        )
        others, peak_mib = out.stdout.split("\n")[:2]
        assert others == "[]", (name, others)
        assert int(peak_mib) < 100, (name, peak_mib)


def test_the_read_side_reads_the_model_not_outcomes_code():
    """It imports of Linkwell only the contracts, the database helpers and outcomes' pure
    wellbeing definitions; never outcomes' handlers, store or projection."""
    modules = sorted(READSIDE.glob("*.py"))
    assert {p.name for p in modules} >= {"web.py", "figures.py", "plots.py", "sessions.py"}
    for path in modules:
        for name in imported(path):
            if name.startswith("services."):
                allowed = READSIDE_MAY_IMPORT + READSIDE_MAY_IMPORT_OF_OUTCOMES
                assert name.startswith(allowed), (path.name, name)
            assert not name.startswith(("typer", "services.ops")), (path.name, name)


def test_outcomes_keeps_only_what_outcomes_does():
    """No page, template, report, picture or token code left in outcomes: only its
    projection into the reporting model, and that model's migrations."""
    for path in OUTCOMES.rglob("*.py"):
        for name in imported(path):
            assert not name.startswith(
                ("services.readside", "starlette", "jinja2", "matplotlib", "uvicorn")
            ), (path.relative_to(OUTCOMES), name)
    reporting = {p.relative_to(OUTCOMES / "reporting").as_posix()
                 for p in (OUTCOMES / "reporting").rglob("*") if p.is_file()
                 and "__pycache__" not in p.parts}  # fmt: skip
    assert {p for p in reporting if p.endswith(".py")} == {"__init__.py", "store.py"}
    assert not list(OUTCOMES.rglob("*.html"))


def test_the_read_side_is_not_a_service():
    """It consumes no event: the runner never starts it. Its one schema holds people's
    accounts and sessions, never a figure."""
    from services.registry import SERVICE_DEFS

    assert "readside" not in SERVICE_DEFS and "dashboard" not in SERVICE_DEFS
    tables = " ".join(p.read_text() for p in (READSIDE / "migrations").glob("*.sql"))
    assert "CREATE TABLE account" in tables and "_fact" not in tables


def test_the_dashboard_loads_no_plotting_library():
    """The dashboard process (``linkwell dashboard``) draws its charts as SVG in templates;
    matplotlib is loaded only by ``linkwell report --plot``."""
    code = (
        "import sys\n"
        "import services.ops.cli, services.ops.report_cli, services.readside.web\n"
        "print(','.join(m for m in ('matplotlib', 'numpy', 'PIL') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", out.stdout
