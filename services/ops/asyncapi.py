"""An AsyncAPI 3.0 document per service, generated from the code by FastStream.

Each service gets a ``RabbitBroker`` used only for documentation (it is never connected):
one subscriber per route, on the service's queue bound the way ``topology.bindings_for``
binds it, with the payload typed as ``CloudEvent[<Model>]`` so that the message schema is
the contract itself; and one publisher per event the service emits, on ``<ns>.events``
with the routing key template ``<type>.{<routed-by field>}``. FastStream renders the
document; the only thing added afterwards is each publisher channel's ``parameters``
(AsyncAPI asks for one per ``{expression}`` in an address; FastStream writes none).

``linkwell asyncapi write`` regenerates ``contracts/asyncapi/<service>.json``;
``linkwell asyncapi check`` and the unit tests fail when a committed document is stale.
"""

from __future__ import annotations

import json
import tomllib
import warnings
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from faststream.rabbit import ExchangeType, QueueType, RabbitBroker, RabbitExchange, RabbitQueue
from faststream.specification import AsyncAPI

from contracts.envelope import CONTENT_TYPE, CloudEvent
from contracts.events import EVENTS, Direction, EventData, EventSpec
from services.ops.catalogue import consumers, producers
from services.runtime.names import Names
from services.runtime.service import ServiceDef
from services.runtime.topology import bindings_for

ROOT = Path(__file__).resolve().parents[2]
DOCS_DIR = ROOT / "contracts" / "asyncapi"
SCHEMA_VERSION = "3.0.0"
NAMESPACE = "linkwell"
# The committed documents must not depend on the machine that wrote them.
SERVER = "amqp://rabbitmq:5672/"


def package_version() -> str:
    try:
        return metadata.version("linkwell")
    except metadata.PackageNotFoundError:  # running from a checkout that is not installed
        return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def emitted_by(service: ServiceDef) -> list[EventSpec]:
    """What a service publishes: what it declares it emits, in contract order."""
    return [s for s in EVENTS.values() if s.model in service.emits]


def _summary(model: type[EventData]) -> str:
    return (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")


def _parameter(model: type[EventData]) -> dict[str, Any]:
    """The AsyncAPI parameter for the last word of an emitted event's routing key."""
    field = model.ROUTED_BY
    assert field is not None
    schema = model.model_json_schema()["properties"][field]
    about = schema.get("description", "").rstrip(".")
    parameter: dict[str, Any] = {
        "description": f"The event's `data.{field}`" + (f": {about}." if about else ".")
    }
    if schema.get("examples"):
        parameter["examples"] = [str(e) for e in schema["examples"]]
    return parameter


def _handler(model: type[EventData]) -> Any:
    """A stand-in handler whose signature gives FastStream the payload type."""

    async def handle(event: Any) -> None:
        """Documentation only: never called."""

    # Set here, not written in the signature: this module's annotations are strings.
    handle.__annotations__ = {"event": CloudEvent[model], "return": None}  # type: ignore[valid-type]
    handle.__name__ = model.__name__
    return handle


def _exchange(name: str, alternate: str) -> RabbitExchange:
    return RabbitExchange(
        name, type=ExchangeType.TOPIC, durable=True, arguments={"alternate-exchange": alternate}
    )


def broker_for(service: ServiceDef, names: Names, server: str = SERVER) -> RabbitBroker:
    """A documentation-only broker mirroring what the service consumes and emits."""
    exchanges = {
        names.inbound: _exchange(names.inbound, names.unrouted),
        names.events: _exchange(names.events, names.events_unrouted),
    }
    emitted = emitted_by(service)
    overlap = set(service.routes) & {s.type for s in emitted}
    if overlap:  # channels are named by type: one type, one channel per document
        raise ValueError(f"{service.name} both consumes and emits {sorted(overlap)}")
    queue = names.queue(service.name)
    broker = RabbitBroker(
        server,
        app_id=f"linkwell-{service.name}",
        logger=None,
        description=f"RabbitMQ. Namespace `{names.ns}`: exchanges `{names.inbound}` "
        f"(inbound) and `{names.events}` (emitted events).",
    )
    for event_type, route in service.routes.items():
        (binding,) = bindings_for(names, [route.model])
        producer = producers(EVENTS[event_type])
        broker.subscriber(
            RabbitQueue(
                queue,
                queue_type=QueueType.QUORUM,
                durable=True,
                declare=False,
                routing_key=binding.routing_key,
            ),
            exchanges[binding.exchange],
            title=event_type,
            description=(
                f"{_summary(route.model)} Published by {producer} to the topic exchange "
                f"`{binding.exchange}`; {service.name} consumes it from its quorum queue "
                f"`{queue}`, bound by `{binding.routing_key}`."
            ),
        )(_handler(route.model))
    for spec in emitted:
        model = spec.model
        assert model.DIRECTION is Direction.EMITTED, spec.type
        if model.ROUTED_BY is None:
            routing_key, words = model.TYPE, ""
        else:
            routing_key = f"{model.TYPE}.{{{model.ROUTED_BY}}}"
            words = (
                f" with routing key `{routing_key}`: the last word is the event's "
                f"`data.{model.ROUTED_BY}`, which subscribers filter on (bind "
                f"`{model.TYPE}.<value>` for one, `{model.TYPE}.*` for all)"
            )
        broker.publisher(
            exchange=exchanges[names.events],
            routing_key=routing_key,
            schema=CloudEvent[model],  # type: ignore[valid-type]
            title=spec.type,
            description=(
                f"{_summary(model)} Published by {producers(spec)} to the topic exchange "
                f"`{names.events}`{words}. Consumed by {consumers(spec)}."
            ),
            persist=True,
            mandatory=False,
            content_type=CONTENT_TYPE,
            message_type=spec.type,
        )
    return broker


def document(
    service: ServiceDef, namespace: str = NAMESPACE, server: str = SERVER
) -> dict[str, Any]:
    """The service's AsyncAPI document as JSON-able data."""
    names = Names(namespace)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = AsyncAPI(
            broker_for(service, names, server),
            title=f"Linkwell {service.name}",
            version=package_version(),
            description=(
                f"{service.description}\n\n"
                "Every message is a CloudEvents 1.0 structured-mode JSON envelope "
                f"(content type `{CONTENT_TYPE}`) whose `data` is the event's contract: "
                "see contracts/schemas/<type>.schema.json and the README's contract "
                "section. Generated from the code by `linkwell asyncapi write`; do not edit."
            ),
            identifier=names.source(service.name),
            schema_version=SCHEMA_VERSION,
        ).to_specification()
        doc: dict[str, Any] = json.loads(spec.to_json())
    # FastStream overwrites one schema with another of the same name, with a warning.
    problems = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    if problems:
        raise RuntimeError(f"AsyncAPI generation for {service.name}: {problems}")
    # What FastStream cannot say: the envelope's content type, and the parameter each
    # publisher's address names.
    doc["defaultContentType"] = CONTENT_TYPE
    for emitted in emitted_by(service):
        if emitted.model.ROUTED_BY is not None:
            parameters = {emitted.model.ROUTED_BY: _parameter(emitted.model)}
            doc["channels"][emitted.type]["parameters"] = parameters
    return doc


def render(service: ServiceDef, namespace: str = NAMESPACE, server: str = SERVER) -> str:
    return (
        json.dumps(
            document(service, namespace, server), indent=2, sort_keys=True, ensure_ascii=False
        )
        + "\n"
    )


def path_for(service: str, directory: Path = DOCS_DIR) -> Path:
    return directory / f"{service}.json"


def write(services: Iterable[ServiceDef], directory: Path = DOCS_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for service in services:
        path = path_for(service.name, directory)
        path.write_text(render(service), encoding="utf-8")
        written.append(path)
    return written


def stale(services: Iterable[ServiceDef], directory: Path = DOCS_DIR) -> dict[str, str]:
    """Service name -> why its committed document differs from a fresh one."""
    out = {}
    for service in services:
        path = path_for(service.name, directory)
        if not path.exists():
            out[service.name] = f"{path.name} is missing"
            continue
        fresh, committed = render(service), path.read_text(encoding="utf-8")
        if fresh != committed:
            out[service.name] = _diff_summary(path.name, committed, fresh)
    return out


def _diff_summary(name: str, committed: str, fresh: str, limit: int = 20) -> str:
    import difflib

    lines = list(
        difflib.unified_diff(
            committed.splitlines(),
            fresh.splitlines(),
            f"committed/{name}",
            f"generated/{name}",
            n=1,
            lineterm="",
        )
    )
    changed = sum(1 for ln in lines if ln[:1] in "+-" and ln[:3] not in ("+++", "---"))
    shown = lines[: limit + 2]
    more = f"\n... ({len(lines) - len(shown)} more diff lines)" if len(lines) > len(shown) else ""
    return f"{name}: {changed} lines differ\n" + "\n".join(shown) + more
