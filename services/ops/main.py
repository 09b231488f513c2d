"""The ``linkwell`` command (``python -m services.ops.main``).

``linkwell run <service>`` loads that one service and nothing else: not the operator
commands, not the other services (a service process holds only its own code: less memory,
a faster start). Every other command goes to the full command line, ``services.ops.cli``.
"""

from __future__ import annotations

import importlib
import sys

# every service a process can run, by the name ``services/<name>/app.py`` defines
# (services.registry holds the same names; tests/unit/test_layout.py keeps them equal)
SERVICES = ("intake", "triage", "notify", "outcomes", "gateway", "audit")


def one_service(argv: list[str]) -> str | None:
    """The service ``argv`` asks to run on its own, or None for any other command."""
    if len(argv) == 2 and argv[0] == "run" and argv[1] in SERVICES:
        return argv[1]
    return None


def main(argv: list[str] | None = None) -> None:
    from pydantic import ValidationError

    from services.runtime.secure import Refused

    args = sys.argv[1:] if argv is None else argv
    try:
        name = one_service(args)
        if name is not None:
            from services.runtime.runner import run

            run(importlib.import_module(f"services.{name}.app").SERVICE)
        else:
            from services.ops.cli import app

            app(args=args, prog_name="linkwell")
    except ValidationError as error:
        # a refused setting (a missing or development secret, a plain link): say which,
        # without a traceback
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"]) or "settings"
            print(f"linkwell: {where}: {problem['msg']}", file=sys.stderr)
        raise SystemExit(2) from None
    except Refused as error:
        print(f"linkwell: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
