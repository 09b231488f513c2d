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
        "services.gateway.settings:GatewaySettings",
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


@pytest.mark.parametrize("program", ["agency.py", "team.py"])
def test_readme_shows_the_tested_programs_as_they_are(program):
    """The README's snippets are docs/examples/, which tests/integration/test_snippets.py
    runs: what integrators copy is what CI ran."""
    text = (Path(__file__).parents[2] / "docs" / "examples" / program).read_text()
    code = text[text.index("\nimport ") + 1 :].rstrip("\n")
    assert f"```python\n{code}\n```" in README, f"README's copy of docs/examples/{program} is stale"


def test_links_in_the_documentation_resolve():
    import re

    root = Path(__file__).parents[2]
    pages = [root / "README.md", root / "deploy" / "README.md", *root.glob("docs/**/*.md")]
    for page in pages:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), (page.relative_to(root), target)
