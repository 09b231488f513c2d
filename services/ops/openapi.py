"""The gateway's OpenAPI 3.1 document, generated from the contract models: the JSON API's
request body is ``referral.submitted.v1``'s data, its answers ``contracts.api``; the
schemas are pydantic's JSON Schema (draft 2020-12, which OpenAPI 3.1 uses as is).

The FHIR endpoints add their paths here when ``services/gateway/fhir/openapi.py`` exists:
it defines ``paths() -> dict`` (OpenAPI path items) and may define ``schemas() -> dict``
(more ``components.schemas``); nothing else needs to change.

``linkwell openapi write`` regenerates ``contracts/openapi/gateway.json``; ``linkwell
openapi check`` and ``tests/unit/test_openapi.py`` fail when the committed one is stale."""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from contracts.api import Problem, ReferralReceived, ReferralStanding
from contracts.events import ReferralSubmitted

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "contracts" / "openapi" / "gateway.json"
VERSION = "3.1.0"
FHIR_MODULE = "services.gateway.fhir.openapi"
REF = "#/components/schemas/{model}"


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}},
    }


def _json(model: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model=model)}}},
    }


def schemas() -> dict[str, Any]:
    _, top = models_json_schema(
        [
            (ReferralSubmitted, "validation"),
            (ReferralReceived, "serialization"),
            (ReferralStanding, "serialization"),
            (Problem, "serialization"),
        ],
        ref_template=REF,
    )
    return dict(sorted(top["$defs"].items()))


def api_paths() -> dict[str, Any]:
    auth = {
        "401": _problem(
            "No credential, or not recognised, expired or revoked (missing_credential, "
            "invalid_credential, credential_expired, credential_revoked)."
        )
    }
    return {
        "/v1/referrals": {
            "post": {
                "operationId": "submitReferral",
                "summary": "Send a referral as the credential's organisation.",
                "description": "The body is referral.submitted.v1's data. The sender is the "
                "credential's organisation, never the body. Answered 202 only once the "
                "referral is committed in the gateway's outbox. A retry with the same "
                "Idempotency-Key and body gets the same answer and sends nothing more.",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": True,
                        "description": "One per referral, the same on every retry (a UUID).",
                        "schema": {
                            "type": "string",
                            "pattern": "^[A-Za-z0-9._:~+/=-]{1,128}$",
                        },
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": REF.format(model="ReferralSubmitted")}
                        }
                    },
                },
                "responses": {
                    "202": {
                        **_json("ReferralReceived", "Committed: it will reach intake."),
                        "headers": {
                            "Location": {"schema": {"type": "string"}},
                            "Idempotent-Replay": {
                                "description": "true when this answers a retry.",
                                "schema": {"type": "string", "enum": ["true", "false"]},
                            },
                        },
                    },
                    "400": _problem(
                        "Not JSON, or no or a malformed Idempotency-Key (schema_invalid, "
                        "idempotency_key_missing, idempotency_key_invalid)."
                    ),
                    **auth,
                    "403": _problem("Not permitted (not_permitted)."),
                    "409": _problem(
                        "The Idempotency-Key was used with another body (idempotency_key_reused)."
                    ),
                    "413": _problem("The body is too large (too_large)."),
                    "415": _problem("Not application/json (unsupported_media_type)."),
                    "422": _problem(
                        "The contract refuses the referral: the reasons, with the codes "
                        "referral.rejected.v1 uses (schema_invalid, nhs_number_invalid, "
                        "consent_missing, ...)."
                    ),
                    "500": _problem("Not sent: retry with the same Idempotency-Key."),
                },
            }
        },
        "/v1/referrals/{id}": {
            "get": {
                "operationId": "getReferral",
                "summary": "Where one of your organisation's referrals stands.",
                "parameters": [
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "description": "The id POST answered.",
                        "schema": {"type": "string", "format": "uuid"},
                    }
                ],
                "responses": {
                    "200": _json("ReferralStanding", "The first answer and latest status."),
                    **auth,
                    "404": _problem("No referral of yours has this id (not_found)."),
                },
            }
        },
    }


def _fhir() -> tuple[dict[str, Any], dict[str, Any]]:
    if importlib.util.find_spec("services.gateway.fhir") is None:
        return {}, {}
    if importlib.util.find_spec(FHIR_MODULE) is None:
        return {}, {}
    module = importlib.import_module(FHIR_MODULE)
    extra = module.schemas() if hasattr(module, "schemas") else {}
    return module.paths(), extra


def document() -> dict[str, Any]:
    fhir_paths, fhir_schemas = _fhir()
    return {
        "openapi": VERSION,
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "Linkwell gateway",
            "version": "1",
            "summary": "Referrals from an organisation's own system over HTTP.",
            "description": "Credentials: `linkwell gateway client issue` (see "
            "docs/architecture/api-clients.md). Refusals are RFC 9457 problem details "
            "with a machine-readable code.",
        },
        "servers": [{"url": "http://127.0.0.1:8070"}],
        "security": [{"bearer": []}],
        "paths": {**api_paths(), **fhir_paths},
        "components": {
            "schemas": {**schemas(), **fhir_schemas},
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API credential (lwk_...), shown once when issued.",
                }
            },
        },
    }


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


def write(path: Path = DOC) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render())
    return path


def stale(path: Path = DOC) -> bool:
    return not path.exists() or path.read_text() != render()
