"""The gateway's OpenAPI document: committed, up to date, an OpenAPI 3.1 document whose
every reference resolves, whose request body is the contract's referral.submitted.v1
data and whose answers are contracts.api's models; the check fails on a stale copy."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from contracts.api import Problem, ReferralStanding
from contracts.events import ReferralSubmitted
from services.ops import openapi
from services.ops.openapi_cli import app


def committed() -> dict[str, Any]:
    return json.loads(openapi.DOC.read_text())


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def test_committed_document_is_up_to_date():
    assert openapi.DOC.exists(), "run `linkwell openapi write`"
    assert openapi.DOC.read_text() == openapi.render(), (
        "contracts/openapi/gateway.json is stale: run `linkwell openapi write` and commit it"
    )


def test_it_is_an_openapi_3_1_document_whose_references_resolve():
    doc = committed()
    assert doc["openapi"] == "3.1.0" and doc["info"]["title"] and doc["info"]["version"]
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["bearer"]["description"],
    }
    schemas = doc["components"]["schemas"]
    found = refs(doc)
    assert found
    for ref in found:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in schemas, ref
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            assert operation["responses"], (path, method)
            assert operation["operationId"], (path, method)


def test_the_request_body_is_the_contract_and_the_answers_are_its_models():
    doc = committed()
    post = doc["paths"]["/v1/referrals"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][body.rsplit("/", 1)[1]]
    assert set(schema["properties"]) == set(ReferralSubmitted.model_fields)
    assert set(schema["required"]) == {
        n for n, f in ReferralSubmitted.model_fields.items() if f.is_required()
    }
    assert [p["name"] for p in post["parameters"]] == ["Idempotency-Key"]
    assert post["parameters"][0]["required"] is True
    assert {"202", "400", "401", "409", "413", "415", "422"} <= set(post["responses"])
    problem = doc["components"]["schemas"]["Problem"]
    assert set(problem["properties"]) == set(Problem.model_fields)
    get = doc["paths"]["/v1/referrals/{id}"]["get"]
    assert {"200", "401", "404"} <= set(get["responses"])
    standing = doc["components"]["schemas"]["ReferralStanding"]
    assert set(standing["properties"]) == set(ReferralStanding.model_fields)


def test_fhir_paths_join_the_document_when_the_fhir_module_gives_them(monkeypatch):
    item = {"post": {"operationId": "processMessage", "responses": {"200": {"description": "ok"}}}}
    monkeypatch.setattr(openapi, "_fhir", lambda: ({"/$process-message": item}, {"X": {}}))
    doc = openapi.document()
    assert doc["paths"]["/$process-message"] == item and "X" in doc["components"]["schemas"]
    assert "/v1/referrals" in doc["paths"]


def test_cli_check_fails_on_a_stale_document(tmp_path):
    path = tmp_path / "gateway.json"
    runner = CliRunner()
    assert runner.invoke(app, ["write", "--path", str(path)]).exit_code == 0
    assert runner.invoke(app, ["check", "--path", str(path)]).exit_code == 0
    doc = json.loads(path.read_text())
    del doc["paths"]["/v1/referrals/{id}"]
    path.write_text(json.dumps(doc))
    result = runner.invoke(app, ["check", "--path", str(path)])
    assert result.exit_code == 1 and "linkwell openapi write" in result.output
