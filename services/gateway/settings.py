"""The gateway's own settings, from the environment (the shared ones are
``services.runtime.settings``)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from contracts.envelope import OrgCode
from services.runtime.secure import is_development_secret

DEFAULT_PRACTICES = Path(__file__).resolve().parents[2] / "deploy" / "gateway" / "practices.toml"


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    # the shared LINKWELL_MODE (services/runtime/settings.py), read again for the gateway's
    # own secret: outside development it must be set, and not a development one
    mode: Literal["production", "development"] = Field(
        "production", validation_alias=_env("LINKWELL_MODE"), exclude=True
    )

    gateway_host: str = Field(
        "127.0.0.1",
        validation_alias=_env("LINKWELL_GATEWAY_HOST"),
        description="Address the gateway's pages listen on (0.0.0.0 in containers).",
    )
    gateway_port: int = Field(
        8070,
        ge=0,
        le=65535,
        validation_alias=_env("LINKWELL_GATEWAY_PORT"),
        description="Port of the gateway's pages (the people's door: /refer); 0 turns them off.",
    )
    gateway_public_org: OrgCode = Field(
        "SELF-WEB",
        validation_alias=_env("LINKWELL_GATEWAY_PUBLIC_ORG"),
        description="The organisation code people's own referrals are sent as (their "
        "source, urn:linkwell:org:<code>). The gateway is trusted for the organisations "
        "it serves only: give its broker user the grant `linkwell-gateway=<code>` in "
        "intake's LINKWELL_TRUSTED_USERS.",
    )
    gateway_practices: Path = Field(
        DEFAULT_PRACTICES,
        validation_alias=_env("LINKWELL_GATEWAY_PRACTICES"),
        description="The scheme's GP practices (TOML: ODS code, name, postcode, PCN), "
        "which people choose theirs from.",
    )
    gateway_scheme_name: str = Field(
        "Linkwell social prescribing",
        max_length=100,
        validation_alias=_env("LINKWELL_GATEWAY_SCHEME_NAME"),
        description="The scheme's name, as pages show it.",
    )
    gateway_draft_minutes: int = Field(
        60,
        ge=5,
        le=240,
        validation_alias=_env("LINKWELL_GATEWAY_DRAFT_MINUTES"),
        description="Minutes a half-filled form is kept, on the server, after its last "
        "answer; then deleted.",
    )
    gateway_client_posts_per_minute: int = Field(
        30,
        ge=1,
        validation_alias=_env("LINKWELL_GATEWAY_CLIENT_POSTS_PER_MINUTE"),
        description="Form posts one client address may make in a minute.",
    )
    gateway_global_posts_per_minute: int = Field(
        600,
        ge=1,
        validation_alias=_env("LINKWELL_GATEWAY_GLOBAL_POSTS_PER_MINUTE"),
        description="Form posts the gateway takes in a minute from everyone together.",
    )
    gateway_client_sends_per_hour: int = Field(
        10,
        ge=1,
        validation_alias=_env("LINKWELL_GATEWAY_CLIENT_SENDS_PER_HOUR"),
        description="Referrals, status checks and withdrawals one client address may send "
        "in an hour.",
    )
    gateway_secure_cookies: bool = Field(
        False,
        validation_alias=_env("LINKWELL_GATEWAY_SECURE_COOKIES"),
        description="Mark cookies Secure (HTTPS only): on wherever the pages are served "
        "over HTTPS, as they must be outside a laptop.",
    )
    gateway_organisations: Annotated[tuple[OrgCode, ...], NoDecode] = Field(
        (),
        validation_alias=_env("LINKWELL_GATEWAY_ORGANISATIONS"),
        description="Other organisations the gateway sends for (comma separated), "
        "besides the public one: those whose professionals sign in to make a referral "
        "(`linkwell gateway invite`); its queue takes the answers to each.",
    )

    gateway_public_url: str = Field(
        "",
        max_length=200,
        validation_alias=_env("LINKWELL_GATEWAY_PUBLIC_URL"),
        description="The address people reach the pages at (https://...), as invitation "
        "links name it; empty: http://<LINKWELL_GATEWAY_HOST>:<LINKWELL_GATEWAY_PORT>.",
    )
    gateway_cookie_samesite: Literal["lax", "strict"] = Field(
        "lax",
        validation_alias=_env("LINKWELL_GATEWAY_COOKIE_SAMESITE"),
        description="SameSite of the gateway's cookies (all HttpOnly): lax, or strict.",
    )
    gateway_session_idle_seconds: int = Field(
        1800,
        ge=1,
        le=86400,
        validation_alias=_env("LINKWELL_GATEWAY_SESSION_IDLE_SECONDS"),
        description="A professional's session ends after this long without a page.",
    )
    gateway_session_max_seconds: int = Field(
        8 * 3600,
        ge=1,
        le=7 * 86400,
        validation_alias=_env("LINKWELL_GATEWAY_SESSION_MAX_SECONDS"),
        description="A professional's session ends this long after signing in, however busy.",
    )
    gateway_retain_sign_ins_days: float = Field(
        90.0,
        gt=0,
        validation_alias=_env("LINKWELL_GATEWAY_RETAIN_SIGN_INS_DAYS"),
        description="Days each sign-in (account id and time only) is kept.",
    )
    gateway_invitation_hours: int = Field(
        72,
        ge=1,
        le=720,
        validation_alias=_env("LINKWELL_GATEWAY_INVITATION_HOURS"),
        description="Hours an invitation link (`linkwell gateway invite`) can be used in.",
    )
    gateway_sign_ins_per_account: int = Field(
        5,
        ge=1,
        validation_alias=_env("LINKWELL_GATEWAY_SIGN_INS_PER_ACCOUNT"),
        description="Sign-in attempts for one email address in 15 minutes.",
    )
    gateway_sign_ins_per_client: int = Field(
        20,
        ge=1,
        validation_alias=_env("LINKWELL_GATEWAY_SIGN_INS_PER_CLIENT"),
        description="Sign-in attempts from one client address in 15 minutes.",
    )

    gateway_client_pepper: SecretStr = Field(
        SecretStr(""),
        validation_alias=_env("LINKWELL_GATEWAY_CLIENT_PEPPER"),
        description="Server secret API credentials are digested with (HMAC-SHA256): a "
        "stolen copy of the database alone cannot test guesses. Changing it invalidates "
        "every API credential.",
    )
    gateway_proxy_addresses: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        validation_alias=_env("LINKWELL_GATEWAY_PROXY_ADDRESSES"),
        description="Addresses or CIDRs (comma separated) of the BaRS proxy in front of "
        "the API: only requests from these, with LINKWELL_GATEWAY_PROXY_CREDENTIAL, may "
        "name their sender in the proxy's organisation header. Empty: proxy mode off.",
    )
    gateway_proxy_credential: SecretStr = Field(
        SecretStr(""),
        validation_alias=_env("LINKWELL_GATEWAY_PROXY_CREDENTIAL"),
        description="The bearer credential the proxy presents (at least 32 characters); "
        "empty: proxy mode off.",
    )

    gateway_push_max_attempts: int = Field(
        15,
        ge=1,
        le=30,
        validation_alias=_env("LINKWELL_GATEWAY_PUSH_MAX_ATTEMPTS"),
        description="Tries of one servicerequest-response pushed to a sender's endpoint "
        "before it is given up (retried after 1, 2, 4... seconds, at most an hour apart, "
        "as notify's messages: 15 span about three hours).",
    )
    gateway_push_give_up_hours: float = Field(
        24.0,
        gt=0,
        validation_alias=_env("LINKWELL_GATEWAY_PUSH_GIVE_UP_HOURS"),
        description="A pushed step still not delivered this long after it was queued is "
        "given up, whatever its tries (the sender can still poll GET /Task).",
    )
    gateway_push_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=60,
        validation_alias=_env("LINKWELL_GATEWAY_PUSH_TIMEOUT_SECONDS"),
        description="Seconds one push to a sender's endpoint may take before it counts as failed.",
    )
    gateway_retain_pushes_days: float = Field(
        30.0,
        gt=0,
        validation_alias=_env("LINKWELL_GATEWAY_RETAIN_PUSHES_DAYS"),
        description="Days a pushed step's delivery row (ids, status, reason, tries) is "
        "kept after it was queued; then deleted.",
    )

    @field_validator("gateway_proxy_addresses", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        for part in value or ():  # type: ignore[union-attr]
            ipaddress.ip_network(part, strict=False)  # a typo fails at start, loudly
        return value

    @field_validator("gateway_organisations", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _fail_closed(self) -> GatewaySettings:
        pepper = self.gateway_client_pepper.get_secret_value()
        if self.mode != "development" and (is_development_secret(pepper) or len(pepper) < 32):
            raise ValueError(
                "refusing to start outside development: LINKWELL_GATEWAY_CLIENT_PEPPER (the "
                "secret API credentials are digested with) is missing, shorter than 32 "
                "characters or a known development one; give it its own (openssl rand -hex 32)"
            )
        return self

    @property
    def serves(self) -> tuple[str, ...]:
        """Every organisation the gateway publishes for, the public one first."""
        return tuple(dict.fromkeys((self.gateway_public_org, *self.gateway_organisations)))
