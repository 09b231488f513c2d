"""The README's contract table is what integrators read: it must match the registry."""

from __future__ import annotations

from pathlib import Path

import pytest

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_the_type_table_is_generated_from_the_declarations():
    from services.ops.catalogue import type_table

    assert type_table() in README, (
        "README's type table is stale: paste `linkwell docs types` into it"
    )


def test_every_rejection_code_is_explained():
    from contracts.enums import RejectionCode

    for code in RejectionCode:
        assert f"| `{code.value}` |" in README, code


@pytest.mark.parametrize(
    "settings",
    [
        "services.runtime.settings:Settings",
        "services.notify.settings:NotifySettings",
        "services.ops.settings:OpsSettings",
    ],
)
def test_every_setting_is_documented(settings):
    import importlib

    module, name = settings.split(":")
    Settings = getattr(importlib.import_module(module), name)
    for name, field in Settings.model_fields.items():
        aliases = field.validation_alias.choices if field.validation_alias else [name]
        env = str(aliases[0])
        prefix = env.rsplit("_", 1)[0] + "_" if env.startswith("LINKWELL_SMTP_") else env
        assert f"`{prefix}" in README, f"README configuration table lacks {env}"
