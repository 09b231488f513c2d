"""A container health check that costs next to nothing: standard library only, so it
does not import the services (``linkwell probe`` runs this).

    python -m services.ops.probe          exit 0 if /readyz answers 200
    python -m services.ops.probe --live   /livez instead
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def probe(live: bool = False, port: int | None = None, timeout: float = 3.0) -> tuple[bool, str]:
    port = port or int(os.environ.get("LINKWELL_HTTP_PORT") or 8080)
    url = f"http://127.0.0.1:{port}{'/livez' if live else '/readyz'}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:  # 503: not ready, with the checks in the body
        return False, exc.read().decode(errors="replace")
    except (OSError, ValueError) as exc:
        return False, f"{url}: {type(exc).__name__}"


def main() -> int:
    ok, text = probe(live="--live" in sys.argv[1:])
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
