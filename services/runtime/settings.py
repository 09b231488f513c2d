"""Configuration, from the environment only."""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from . import secure
from .names import Names
from .trust import grants


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Every setting, with the environment variable that sets it."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    mode: Literal["production", "development"] = Field(
        "production",
        validation_alias=_env("LINKWELL_MODE"),
        description="development allows plain links, missing passwords and the sample "
        "development ones, and trusts guest; anything else refuses to start with them "
        "(services/runtime/secure.py).",
    )
    tls_ca: str | None = Field(
        None,
        validation_alias=_env("LINKWELL_TLS_CA"),
        description="CA (PEM file) the broker's and database's certificates must chain to; "
        "adds cafile to amqps:// URLs and sslmode=verify-full to the database URL.",
    )
    amqp_url: str = Field("amqp://guest:guest@127.0.0.1:5672/", validation_alias=_env("AMQP_URL"))
    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/postgres", validation_alias=_env("DATABASE_URL")
    )
    namespace: str = Field(
        "linkwell",
        pattern=r"^[a-z][a-z0-9_]{0,29}$",
        validation_alias=_env("LINKWELL_NAMESPACE"),
        description="Prefix of every exchange, queue and database schema.",
    )
    retry_delays: Annotated[tuple[float, ...], NoDecode] = Field(
        (0.5, 5.0, 30.0),
        validation_alias=_env("LINKWELL_RETRY_DELAYS"),
        description="Seconds before each delayed retry; after the last, a message is "
        "dead-lettered. Comma separated.",
    )
    deferred_limit: int = Field(
        20,
        ge=0,
        validation_alias=_env("LINKWELL_DEFERRED_LIMIT"),
        description="Waits for an event another one depends on, at the longest retry delay.",
    )
    prefetch: int = Field(32, ge=1, validation_alias=_env("LINKWELL_PREFETCH"))
    batch_size: int = Field(
        32,
        ge=1,
        le=500,
        validation_alias=_env("LINKWELL_BATCH_SIZE"),
        description="Deliveries handled together in one transaction when they queue up "
        "(1: one at a time).",
    )
    db_pool_size: int = Field(8, ge=2, validation_alias=_env("LINKWELL_DB_POOL_SIZE"))
    outbox_batch: int = Field(200, ge=1, validation_alias=_env("LINKWELL_OUTBOX_BATCH"))
    poll_interval: float = Field(
        1.0,
        gt=0,
        validation_alias=_env("LINKWELL_POLL_INTERVAL"),
        description="Outbox and dispatcher safety poll; LISTEN/NOTIFY wakes them sooner.",
    )
    graceful_timeout: float = Field(20.0, validation_alias=_env("LINKWELL_GRACEFUL_TIMEOUT"))
    log_level: str = Field("INFO", validation_alias=_env("LINKWELL_LOG_LEVEL"))
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop",
        validation_alias=_env("LINKWELL_EVENT_LOOP"),
        description="The services' event loop: uvloop (libuv, less CPU per message) or "
        "Python's own asyncio loop.",
    )
    trusted_users: Annotated[frozenset[str], NoDecode] = Field(
        frozenset(),
        validation_alias=_env("LINKWELL_TRUSTED_USERS"),
        description="Broker users that may publish inbound events on behalf of other "
        "organisations (comma separated): `user` for any organisation, `user=ORG1|ORG2` "
        "for those only (the gateway: `linkwell access show` prints its grant). Every "
        "other user must be the organisation its events' source names. Unset: nobody, "
        "except in development mode, where it is guest (which can only connect from "
        "the broker's own host).",
    )
    declare_topology: bool = Field(
        True,
        validation_alias=_env("LINKWELL_DECLARE_TOPOLOGY"),
        description="Declare exchanges and queues at start. Off where services run as "
        "least-privilege broker users: `linkwell topology` (as an administrator) declares "
        "them, and a service only checks that its queue exists.",
    )
    http_host: str = Field(
        "127.0.0.1",
        validation_alias=_env("LINKWELL_HTTP_HOST"),
        description="Address of the health and metrics endpoints (0.0.0.0 in containers).",
    )
    http_port: int = Field(
        8080,
        ge=0,
        le=65535,
        validation_alias=_env("LINKWELL_HTTP_PORT"),
        description="Port of /livez, /readyz and /metrics; 0 turns them off.",
    )
    metrics_interval: float = Field(
        5.0,
        gt=0,
        validation_alias=_env("LINKWELL_METRICS_INTERVAL"),
        description="Seconds between refreshes of gauges read from the database.",
    )
    # Retention (docs/retention.md gives each limit's source or reason)
    retention_interval: float = Field(
        3600.0,
        gt=0,
        validation_alias=_env("LINKWELL_RETENTION_INTERVAL"),
        description="Seconds between retention sweeps of the service's own tables.",
    )
    retention_batch: int = Field(
        500,
        ge=1,
        le=10_000,
        validation_alias=_env("LINKWELL_RETENTION_BATCH"),
        description="Rows a retention sweep removes per transaction.",
    )
    retain_outbox_days: float = Field(
        7.0,
        gt=0,
        validation_alias=_env("LINKWELL_RETAIN_OUTBOX_DAYS"),
        description="Days a published outbox row is kept (unpublished rows are never removed).",
    )
    retain_inbox_days: float = Field(
        90.0,
        gt=0,
        validation_alias=_env("LINKWELL_RETAIN_INBOX_DAYS"),
        description="Days a handled event's id is kept to drop its resends.",
    )
    retain_early_days: float = Field(
        30.0,
        gt=0,
        validation_alias=_env("LINKWELL_RETAIN_EARLY_DAYS"),
        description="Days an event is held for a referral that is not known yet.",
    )
    retain_intake_submission_days: float = Field(
        30.0,
        gt=0,
        validation_alias=_env("LINKWELL_INTAKE_RETAIN_SUBMISSION_DAYS"),
        description="Days intake keeps an accepted referral's full submission (then "
        "emptied; ids, pathway and needs remain).",
    )
    retain_ended_days: float = Field(
        90.0,
        gt=0,
        validation_alias=_env("LINKWELL_RETAIN_ENDED_DAYS"),
        description="Days after a referral ended (closed, withdrawn or rejected) that a "
        "service's operational copy of it is kept: intake's referral and person, triage's "
        "placement, notify's contact details, the gateway's submission (docs/retention.md).",
    )
    retain_record_years: float = Field(
        8.0,
        gt=0,
        validation_alias=_env("LINKWELL_RETAIN_RECORD_YEARS"),
        description="Years after the episode closed that outcomes keeps the record of care "
        "(NHS Records Management Code 2023, adult health records); then deleted and the "
        "reporting facts reduced to anonymous ones.",
    )
    retain_dead_letter_days: float = Field(
        14.0,
        gt=0,
        validation_alias=_env("LINKWELL_RETAIN_DEAD_LETTER_DAYS"),
        description="Days a dead letter stays on a dead-letter queue for replay "
        "(a broker policy, applied by `linkwell access apply`).",
    )
    retain_unrouted_days: float = Field(
        14.0,
        gt=0,
        validation_alias=_env("LINKWELL_RETAIN_UNROUTED_DAYS"),
        description="Days an emitted event no subscriber binds is kept for replay.",
    )

    @field_validator("retry_delays", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(float(part) for part in value.split(",") if part.strip())
        return value

    @field_validator("trusted_users", mode="before")
    @classmethod
    def _users(cls, value: object) -> object:
        return grants(value) if isinstance(value, str) else value

    @field_validator("retry_delays")
    @classmethod
    def _positive(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(v <= 0 for v in value):
            raise ValueError("give at least one positive delay")
        return value

    @model_validator(mode="after")
    def _fail_closed(self) -> Settings:
        # frozen: set the derived values once, here
        self.__dict__["amqp_url"] = secure.amqp_with_ca(self.amqp_url, self.tls_ca)
        self.__dict__["database_url"] = secure.database_with_ca(self.database_url, self.tls_ca)
        if self.mode == "development":
            if "trusted_users" not in self.model_fields_set:
                self.__dict__["trusted_users"] = frozenset({"guest"})
            return self
        amqp = self.amqp_url if "amqp_url" in self.model_fields_set else None
        problems = secure.production_problems(amqp, self.database_url, self.tls_ca)
        if problems:
            raise ValueError(
                "refusing to start outside development (LINKWELL_MODE=development is for a "
                "developer's machine only): " + "; ".join(problems)
            )
        return self

    @cached_property
    def names(self) -> Names:
        return Names(self.namespace)
