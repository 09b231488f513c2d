"""The README's contract table is what integrators read: it must match the registry."""

from __future__ import annotations

from pathlib import Path

from contracts.events import EVENTS

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_every_type_is_documented_with_its_routing_key_and_direction():
    for spec in EVENTS.values():
        row = (
            f"| `{spec.type}` | {spec.model.DIRECTION.value} | {spec.producer} "
            f"| `{spec.routing_key_pattern}` | {', '.join(spec.consumers)} |"
        )
        assert row in README, f"README contract table is missing or stale for {spec.type}"


def test_every_rejection_code_is_explained():
    from contracts.enums import RejectionCode

    for code in RejectionCode:
        assert f"| `{code.value}` |" in README, code


def test_every_setting_is_documented():
    from services.runtime.settings import Settings

    for name, field in Settings.model_fields.items():
        aliases = field.validation_alias.choices if field.validation_alias else [name]
        env = str(aliases[0])
        prefix = env.rsplit("_", 1)[0] + "_" if env.startswith("LINKWELL_SMTP_") else env
        assert f"`{prefix}" in README, f"README configuration table lacks {env}"
