"""The FHIR door's paths in the gateway's OpenAPI document (``services/ops/openapi.py``
adds them): bodies are FHIR R4 JSON (``application/fhir+json``), described by their
resource type and the profile they follow; refusals are OperationOutcomes with the BaRS
``REC_*`` code (docs/architecture/fhir.md)."""

from __future__ import annotations

from typing import Any

FHIR_JSON = "application/fhir+json"
REF = "#/components/schemas/{name}"
HEADERS = [
    {"name": "X-Request-Id", "in": "header", "required": True, "schema": {"type": "string"},
     "description": "The request's id (BaRS); echoed."},
    {"name": "X-Correlation-Id", "in": "header", "required": True,
     "schema": {"type": "string"}, "description": "The conversation's id (BaRS); echoed."},
]  # fmt: skip


def _fhir(name: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {FHIR_JSON: {"schema": {"$ref": REF.format(name=name)}}}}  # fmt: skip


def _refusals(*statuses: int) -> dict[str, Any]:
    words = {
        400: "Malformed (REC_BAD_REQUEST).",
        401: "No or unknown credentials (REC_UNAUTHORIZED).",
        403: "Another organisation's (REC_FORBIDDEN).",
        404: "No such resource of yours (REC_NOT_FOUND).",
        409: "Already sent, or no longer cancellable (REC_CONFLICT).",
        413: "Body too large (REC_BAD_REQUEST).",
        415: "Not application/fhir+json (REC_BAD_REQUEST).",
        422: "Well formed but not acceptable (REC_UNPROCESSABLE_ENTITY).",
    }
    return {str(s): _fhir("OperationOutcome", words[s]) for s in statuses}


def schemas() -> dict[str, Any]:
    def resource(kind: str, description: str) -> dict[str, Any]:
        return {
            "type": "object",
            "description": description,
            "required": ["resourceType"],
            "properties": {"resourceType": {"const": kind}},
        }

    return {
        "Bundle": resource("Bundle", "A FHIR R4 Bundle: a BaRS message (servicerequest-request)"
                           ", a Gravity transaction, or a searchset."),
        "Task": resource("Task", "An SDOHCC Task for Referral Management."),
        "ServiceRequest": resource("ServiceRequest", "The receiver's view of a referral."),
        "CapabilityStatement": resource("CapabilityStatement", "What this server supports."),
        "OperationOutcome": resource("OperationOutcome", "A refusal, with the BaRS REC_* code "
                                     "in issue.details and the FHIRPath in issue.expression."),
    }  # fmt: skip


def _with_ids(items: dict[str, Any]) -> dict[str, Any]:
    """Each operation named (fhir<Method><Path>), and a path's {id} declared on each."""
    for path, item in items.items():
        for method, operation in item.items():
            words = "".join(
                w[:1].upper() + w[1:]
                for w in path.replace("$", "").replace("{id}", "byId").strip("/").split("/")
            )
            operation.setdefault("operationId", f"fhir{method.title()}{words.replace('-', '')}")
            if "{id}" in path:
                operation.setdefault(
                    "parameters",
                    [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                )
    return items  # fmt: skip


def paths() -> dict[str, Any]:
    created = _refusals(400, 401, 403, 409, 413, 415, 422)
    read = _refusals(401, 404)
    return _with_ids({
        "/$process-message": {
            "post": {
                "summary": "A BaRS message: a referral, or its cancellation",
                "parameters": HEADERS,
                "requestBody": {"required": True, "content": {
                    FHIR_JSON: {"schema": {"$ref": REF.format(name="Bundle")}}}},
                "responses": {"200": _fhir("Bundle", "In the outbox: the receiver's ids."),
                              **created, **_refusals(404)},
            }
        },
        "/metadata": {"get": {"summary": "The CapabilityStatement", "security": [],
                              "responses": {"200": _fhir("CapabilityStatement", "")}}},
        "/ServiceRequest": {"get": {
            "summary": "The caller's referrals for an NHS number",
            "parameters": [{"name": "patient:identifier", "in": "query", "required": True,
                            "schema": {"type": "string"},
                            "description": "https://fhir.nhs.uk/Id/nhs-number|<NHS number>"}],
            "responses": {"200": _fhir("Bundle", "A searchset."), **_refusals(400, 401)}}},
        "/ServiceRequest/{id}": {"get": {
            "summary": "One of the caller's referrals",
            "parameters": [{"name": "id", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"200": _fhir("ServiceRequest", ""), **read}}},
        "/Task": {
            "post": {
                "summary": "A Gravity Task (with its ServiceRequest) for a new referral",
                "requestBody": {"required": True, "content": {FHIR_JSON: {"schema": {
                    "oneOf": [{"$ref": REF.format(name="Task")},
                              {"$ref": REF.format(name="Bundle")}]}}}},
                "responses": {"201": _fhir("Task", "In the outbox."), **created},
            },
            "get": {
                "summary": "Poll the caller's Tasks",
                "parameters": [
                    {"name": "requester", "in": "query", "required": True,
                     "schema": {"type": "string"}, "description": "Organization/<your ODS>"},
                    {"name": "_lastUpdated", "in": "query", "schema": {"type": "string"},
                     "description": "gt<instant>"},
                ],
                "responses": {"200": _fhir("Bundle", "A searchset."),
                              **_refusals(400, 401, 403)},
            },
        },
        "/Task/{id}": {
            "get": {"summary": "Where a referral stands",
                    "responses": {"200": _fhir("Task", ""), **read}},
            "put": {"summary": "The requester's cancel (status cancelled)",
                    "requestBody": {"required": True, "content": {
                        FHIR_JSON: {"schema": {"$ref": REF.format(name="Task")}}}},
                    "responses": {"200": _fhir("Task", "Being withdrawn."),
                                  **_refusals(401, 404, 409, 422)}},
            "patch": {"summary": "The requester's cancel (JSON Patch of /status)",
                      "requestBody": {"required": True, "content": {
                          "application/json-patch+json": {"schema": {"type": "array"}}}},
                      "responses": {"200": _fhir("Task", "Being withdrawn."),
                                    **_refusals(401, 404, 409, 422)}},
        },
    })  # fmt: skip


def _with_ids(items: dict[str, Any]) -> dict[str, Any]:
    """Each operation named (fhir<Method><Path>), and a path's {id} declared on each."""
    for path, item in items.items():
        for method, operation in item.items():
            words = "".join(
                w[:1].upper() + w[1:]
                for w in path.replace("$", "").replace("{id}", "byId").strip("/").split("/")
            )
            operation.setdefault("operationId", f"fhir{method.title()}{words.replace('-', '')}")
            if "{id}" in path:
                operation.setdefault(
                    "parameters",
                    [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                )
    return items  # fmt: skip
