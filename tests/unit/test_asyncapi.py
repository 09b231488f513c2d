"""Each service's AsyncAPI document: committed, up to date, and saying what the code does."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote

import pytest
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from contracts import schema as contract_schema
from contracts.events import EVENTS, Direction
from services.ops import asyncapi
from services.ops.asyncapi_cli import app as asyncapi_app
from services.registry import SERVICE_DEFS
from services.runtime.names import Names
from services.runtime.topology import bindings_for

SERVICES = sorted(SERVICE_DEFS)
NAMES = Names(asyncapi.NAMESPACE)


def committed(service: str) -> dict[str, Any]:
    return json.loads(asyncapi.path_for(service).read_text(encoding="utf-8"))


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        key = unquote(part).replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and key in node, f"unresolvable $ref {ref}"
        node = node[key]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def operations(doc: dict[str, Any], action: str) -> dict[str, dict[str, Any]]:
    return {k: op for k, op in doc["operations"].items() if op["action"] == action}


def payload_ref(doc: dict[str, Any], operation: dict[str, Any]) -> str:
    (message_ref,) = operation["messages"]
    message = resolve(doc, resolve(doc, message_ref["$ref"])["$ref"])
    return message["payload"]["$ref"]


def data_schema(doc: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    envelope = resolve(doc, payload_ref(doc, operation))
    return resolve(doc, envelope["properties"]["data"]["$ref"])


@pytest.mark.parametrize("service", SERVICES)
def test_committed_document_is_up_to_date(service):
    path = asyncapi.path_for(service)
    assert path.exists(), f"{path} is missing: run `linkwell asyncapi write`"
    fresh = asyncapi.render(SERVICE_DEFS[service])
    assert path.read_text(encoding="utf-8") == fresh, (
        f"{path.name} is stale: run `linkwell asyncapi write` and commit the result"
    )


def test_the_document_does_not_depend_on_the_machine(monkeypatch):
    monkeypatch.setenv("AMQP_URL", "amqp://someone:secret@elsewhere:5672/")
    monkeypatch.setenv("LINKWELL_NAMESPACE", "other")
    text = asyncapi.render(SERVICE_DEFS["intake"])
    assert text == asyncapi.path_for("intake").read_text(encoding="utf-8")
    assert "secret" not in text and "elsewhere" not in text


@pytest.mark.parametrize("service", SERVICES)
def test_document_is_structurally_an_asyncapi_3_document(service):
    doc = committed(service)
    assert doc["asyncapi"] == asyncapi.SCHEMA_VERSION == "3.0.0"
    assert doc["info"]["title"] == f"Linkwell {service}"
    assert doc["info"]["version"] == asyncapi.package_version()
    assert SERVICE_DEFS[service].description in doc["info"]["description"]
    assert doc["id"] == NAMES.source(service)
    (server,) = doc["servers"].values()
    assert server["protocol"] == "amqp" and server["host"] == "rabbitmq:5672"
    assert doc["channels"] and doc["operations"]
    assert doc["components"]["messages"] and doc["components"]["schemas"]
    for ref in refs(doc):  # every reference resolves inside the document
        resolve(doc, ref)
    for key, operation in doc["operations"].items():
        assert operation["action"] in ("send", "receive"), key
        channel = resolve(doc, operation["channel"]["$ref"])
        for message in operation["messages"]:
            assert message["$ref"].startswith(operation["channel"]["$ref"] + "/messages/")
        # AsyncAPI 3: every {expression} in an address is a declared parameter
        expressions = set(re.findall(r"{([^}]+)}", channel["address"]))
        assert expressions == set(channel.get("parameters", {})), key


@pytest.mark.parametrize("service", SERVICES)
def test_document_receives_exactly_what_the_service_consumes(service):
    definition = SERVICE_DEFS[service]
    doc = committed(service)
    received = operations(doc, "receive")
    assert set(received) == set(definition.routes)
    for event_type, route in definition.routes.items():
        channel = resolve(doc, received[event_type]["channel"]["$ref"])
        (binding,) = bindings_for(NAMES, [route.model])
        assert channel["address"] == binding.routing_key
        assert channel["bindings"]["amqp"]["queue"]["name"] == NAMES.queue(service)
        assert f"topic exchange `{binding.exchange}`" in channel["description"]
        assert data_schema(doc, received[event_type])["title"] == route.model.__name__


@pytest.mark.parametrize("service", SERVICES)
def test_document_sends_exactly_what_the_service_emits(service):
    doc = committed(service)
    sent = operations(doc, "send")
    emitted = {s.type: s for s in EVENTS.values() if s.model in SERVICE_DEFS[service].emits}
    assert emitted, service
    assert set(sent) == set(emitted)
    for event_type, spec in emitted.items():
        channel = resolve(doc, sent[event_type]["channel"]["$ref"])
        assert spec.model.DIRECTION is Direction.EMITTED
        assert channel["bindings"]["amqp"]["exchange"]["name"] == NAMES.events
        assert channel["bindings"]["amqp"]["exchange"]["type"] == "topic"
        routed_by = spec.model.ROUTED_BY
        assert channel["address"] == (f"{event_type}.{{{routed_by}}}" if routed_by else event_type)
        assert set(channel.get("parameters", {})) == ({routed_by} if routed_by else set())
        assert data_schema(doc, sent[event_type])["title"] == spec.model.__name__


@pytest.mark.parametrize("service", SERVICES)
def test_message_payloads_are_the_contract(service):
    """`data` requires what contracts/schemas/<type>.schema.json requires, and each
    committed example envelope is a valid message payload."""
    doc = committed(service)
    for event_type, operation in doc["operations"].items():
        contract = json.loads(
            (contract_schema.SCHEMA_DIR / f"{event_type}.schema.json").read_text()
        )
        contract_data = resolve(contract, contract["properties"]["data"]["$ref"])
        data = data_schema(doc, operation)
        assert data["required"] == contract_data["required"], event_type
        assert set(data["properties"]) == set(contract_data["properties"]), event_type
        assert data.get("additionalProperties") is False, event_type

        validator = Draft202012Validator({**doc, "$ref": payload_ref(doc, operation)})
        example = contract_schema.example(event_type)
        assert not list(validator.iter_errors(example)), event_type
        del example["data"][contract_data["required"][0]]
        assert list(validator.iter_errors(example)), event_type


def test_cli_check_passes_on_the_committed_documents():
    result = CliRunner().invoke(asyncapi_app, ["check"])
    assert result.exit_code == 0, result.output


def test_cli_check_fails_on_a_stale_document(tmp_path):
    runner = CliRunner()
    assert runner.invoke(asyncapi_app, ["write", "--dir", str(tmp_path)]).exit_code == 0
    assert runner.invoke(asyncapi_app, ["check", "--dir", str(tmp_path)]).exit_code == 0
    doc = json.loads((tmp_path / "triage.json").read_text())
    doc["info"]["version"] = "0.0.0"
    (tmp_path / "triage.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    (tmp_path / "notify.json").unlink()
    result = runner.invoke(asyncapi_app, ["check", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "triage.json: 2 lines differ" in result.output
    assert "notify.json is missing" in result.output
    assert "linkwell asyncapi write" in result.output
