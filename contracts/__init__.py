"""Linkwell's public contract: every event on the wire, as Pydantic v2 models.

``contracts/examples/<type>.json`` holds a complete valid envelope per type and
``contracts/schemas/<type>.schema.json`` the generated JSON Schema
(``python -m contracts.schema`` regenerates them; the tests check they are current).
"""

from .envelope import (
    BATCH_CONTENT_TYPE,
    CONTENT_TYPE,
    UK,
    CloudEvent,
    RawEvent,
    org_from_source,
    org_source,
)
from .events import EVENTS, Direction, EventData, EventSpec, parse_event

__all__ = [
    "BATCH_CONTENT_TYPE",
    "CONTENT_TYPE",
    "EVENTS",
    "UK",
    "CloudEvent",
    "Direction",
    "EventData",
    "EventSpec",
    "RawEvent",
    "org_from_source",
    "org_source",
    "parse_event",
]
