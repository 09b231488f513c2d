"""CloudEvents 1.0 structured-mode JSON envelope, generic over its ``data``."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from .limits import ID_PATTERN

CONTENT_TYPE = "application/cloudevents+json"
# Several events in one message: a JSON array of structured-mode events (CloudEvents JSON
# Event Format, "JSON Batch Format"). Only Linkwell's own services send it, and only for
# the types in services/runtime/outbox.py BATCHED (docs/architecture/outbox.md).
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
UK = ZoneInfo("Europe/London")  # dates shown to people and GPs are UK calendar dates
ORG_SOURCE_PREFIX = "urn:linkwell:org:"

OrgCode = Annotated[
    str,
    Field(
        pattern=r"^[A-Z0-9][A-Z0-9-]{1,31}$",
        description="Organisation code: an ODS code, or a code Linkwell issues to agencies "
        "without one. Upper case letters, digits and hyphens; used as a routing-key word.",
        examples=["A81001"],
    ),
]

_ORG_SOURCE = re.compile(r"^urn:linkwell:org:([A-Z0-9][A-Z0-9-]{1,31})$")

D = TypeVar("D")


class CloudEvent(BaseModel, Generic[D]):
    """A CloudEvents 1.0 envelope. ``id`` is unique per event and is the idempotency key.

    Inbound envelopes are validated strictly (``parse_event``): ``specversion`` must be
    present, ``time`` must be an RFC 3339 string with an offset, and identifiers are
    printable ASCII without spaces (``contracts.limits``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"]
    id: Annotated[
        str,
        Field(
            min_length=1,
            max_length=128,
            pattern=ID_PATTERN,
            description="Unique per source: 1 to 128 printable ASCII characters, no spaces.",
        ),
    ]
    source: Annotated[
        str,
        Field(
            min_length=1,
            max_length=256,
            pattern=ID_PATTERN,
            description="Producer. Outside organisations use urn:linkwell:org:<ORG CODE>.",
        ),
    ]
    type: Annotated[str, Field(max_length=128, pattern=r"^[a-z][a-z_]*(\.[a-z][a-z_]*)+\.v[0-9]+$")]
    time: AwareDatetime
    subject: Annotated[str | None, Field(max_length=128, pattern=ID_PATTERN)] = Field(
        default=None, description="The referral id where there is one."
    )
    datacontenttype: Annotated[
        str,
        Field(
            max_length=128,
            pattern=r"^application/json\s*(;[\x20-\x7e]*)?$",
            description="JSON, any parameters",
        ),
    ] = "application/json"
    correlationid: Annotated[str | None, Field(max_length=128, pattern=ID_PATTERN)] = Field(
        default=None,
        description="Extension attribute: the id of the event that started this chain.",
    )
    data: D

    @field_validator("time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @property
    def sender_org(self) -> str | None:
        """The organisation code named by an outside producer's ``source``."""
        return org_from_source(self.source)

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


RawEvent = CloudEvent[dict[str, Any]]


def org_from_source(source: str | None) -> str | None:
    match = _ORG_SOURCE.match(source or "")
    return match.group(1) if match else None


def org_source(org: str) -> str:
    return f"{ORG_SOURCE_PREFIX}{org}"


def new_event_id() -> str:
    return str(uuid.uuid4())


def now() -> datetime:
    return datetime.now(UTC)
