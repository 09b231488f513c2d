"""Generate (or check) the JSON Schema of every event envelope.

python -m contracts.schema          # write contracts/schemas/<type>.schema.json
python -m contracts.schema --check  # exit 1 if any file is missing or stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .envelope import CloudEvent
from .events import EVENTS, EventSpec

SCHEMA_DIR = Path(__file__).parent / "schemas"
EXAMPLES_DIR = Path(__file__).parent / "examples"


def example(event_type: str) -> dict[str, Any]:
    """The committed example envelope of a type, as a fresh dict."""
    return json.loads((EXAMPLES_DIR / f"{event_type}.json").read_text())


def envelope_schema(spec: EventSpec) -> dict[str, Any]:
    schema = CloudEvent[spec.model].model_json_schema()  # type: ignore[name-defined]
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://linkwell.example/schemas/{spec.type}.schema.json"
    schema["title"] = spec.type
    schema["description"] = (spec.model.__doc__ or "").strip()
    schema["properties"]["type"] = {"const": spec.type, "type": "string"}
    schema["x-linkwell"] = {
        "direction": spec.model.DIRECTION.value,
        "routing_key": spec.routing_key_pattern,
        # outside parties: who may publish an inbound type, who receives an emitted one
        "parties": [p.value for p in spec.parties],
    }
    return schema


def render(spec: EventSpec) -> str:
    return json.dumps(envelope_schema(spec), indent=2, sort_keys=True) + "\n"


def stale() -> list[str]:
    out = []
    for spec in EVENTS.values():
        path = SCHEMA_DIR / f"{spec.type}.schema.json"
        if not path.exists() or path.read_text() != render(spec):
            out.append(path.name)
    return out


def main(argv: list[str]) -> int:
    if "--check" in argv:
        bad = stale()
        for name in bad:
            print(f"stale or missing: contracts/schemas/{name}", file=sys.stderr)
        return 1 if bad else 0
    SCHEMA_DIR.mkdir(exist_ok=True)
    for spec in EVENTS.values():
        (SCHEMA_DIR / f"{spec.type}.schema.json").write_text(render(spec))
    print(f"wrote {len(EVENTS)} schemas to {SCHEMA_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
