"""Who produces and who consumes each event type, from the services' own declarations
(``ServiceDef.routes`` and ``.emits``) and the contract's outside parties
(``contracts.events.Party``). The README's type table, the AsyncAPI documents and the
broker permissions are all generated from here; tests keep them current."""

from __future__ import annotations

from collections.abc import Iterable

from contracts.events import EVENTS, Direction, EventSpec
from services.registry import SERVICE_DEFS
from services.runtime.service import ServiceDef

ANY_SERVICE = "any service"


def producers(spec: EventSpec, services: Iterable[ServiceDef] | None = None) -> str:
    """Who publishes a type: its outside parties if inbound, else the services that
    declare they emit it ("any service" when every one does)."""
    services = list(services if services is not None else SERVICE_DEFS.values())
    if spec.model.DIRECTION is Direction.INBOUND:  # and the services that publish it for them
        publishing = [
            f"{s.name} (for the organisations it serves)"
            for s in services
            if spec.model in s.publishes
        ]
        return ", ".join([p.value for p in spec.parties] + publishing)
    emitting = [s.name for s in services if spec.model in s.emits]
    if len(emitting) == len(services) and len(services) > 1:
        return ANY_SERVICE
    return ", ".join(emitting)


def consumers(spec: EventSpec, services: Iterable[ServiceDef] | None = None) -> str:
    """Who consumes a type: the services that route it, then its outside parties if it
    is emitted."""
    services = list(services if services is not None else SERVICE_DEFS.values())
    names = [s.name for s in services if spec.type in s.routes]
    if spec.model.DIRECTION is Direction.EMITTED:
        names += [p.value for p in spec.parties]
    return ", ".join(names)


def table_row(spec: EventSpec) -> str:
    return (
        f"| `{spec.type}` | {spec.model.DIRECTION.value} | {producers(spec)} "
        f"| `{spec.routing_key_pattern}` | {consumers(spec)} |"
    )


def type_table() -> str:
    """The README's table of every type, generated from the declarations."""
    head = (
        "| type | direction | producer | routing key | consumers |\n"
        "| --- | --- | --- | --- | --- |\n"
    )
    return head + "\n".join(table_row(spec) for spec in EVENTS.values()) + "\n"


def settings_classes() -> list[type]:
    """Every settings class: the shared ones, each service's own, the operator tools'."""
    from services.gateway.settings import GatewaySettings
    from services.notify.settings import NotifySettings
    from services.ops.settings import OpsSettings
    from services.runtime.settings import Settings

    return [Settings, NotifySettings, GatewaySettings, OpsSettings]


def environment_variables() -> set[str]:
    """The name of every environment variable a setting is read from."""
    names: set[str] = set()
    for cls in settings_classes():
        for field in cls.model_fields.values():
            alias = field.validation_alias
            names.update(n for n in getattr(alias, "choices", [alias]) if isinstance(n, str))
    return names
