"""The dashboard's own settings, from the environment (the shared ones are
``services.runtime.settings``): sessions, sign-in limits, cookies and the optional single
sign-on by OpenID Connect."""

from __future__ import annotations

import json
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class DashboardSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    session_idle_seconds: int = Field(
        1800,
        ge=1,
        le=86400,
        validation_alias=_env("LINKWELL_DASHBOARD_SESSION_IDLE_SECONDS"),
        description="A dashboard session ends after this long without a page.",
    )
    session_max_seconds: int = Field(
        8 * 3600,
        ge=1,
        le=7 * 86400,
        validation_alias=_env("LINKWELL_DASHBOARD_SESSION_MAX_SECONDS"),
        description="A dashboard session ends this long after signing in, however busy.",
    )
    sign_ins_per_account: int = Field(
        5,
        ge=1,
        validation_alias=_env("LINKWELL_DASHBOARD_SIGN_INS_PER_ACCOUNT"),
        description="Sign-in attempts for one account name in 15 minutes.",
    )
    sign_ins_per_client: int = Field(
        20,
        ge=1,
        validation_alias=_env("LINKWELL_DASHBOARD_SIGN_INS_PER_CLIENT"),
        description="Sign-in attempts from one client address in 15 minutes.",
    )
    secure_cookies: bool | None = Field(
        None,
        validation_alias=_env("LINKWELL_DASHBOARD_SECURE_COOKIES"),
        description="Cookies named __Host- and marked Secure (HTTPS only). Unset: on, "
        "except in development mode (LINKWELL_MODE=development), where the dashboard is "
        "served on http://127.0.0.1 and a browser would not keep them.",
    )
    origin: str = Field(
        "",
        max_length=200,
        validation_alias=_env("LINKWELL_DASHBOARD_ORIGIN"),
        description="The origin people reach the dashboard at (https://host[:port]); "
        "every post must come from it (Origin, else Referer). Empty: the request's own "
        "scheme and Host.",
    )
    oidc_issuer: str = Field(
        "",
        max_length=300,
        validation_alias=_env("LINKWELL_DASHBOARD_OIDC_ISSUER"),
        description="Single sign-on: the OpenID provider's issuer URL (its "
        "/.well-known/openid-configuration is read). Empty: no single sign-on.",
    )
    oidc_client_id: str = Field("", validation_alias=_env("LINKWELL_DASHBOARD_OIDC_CLIENT_ID"))
    oidc_client_secret: SecretStr = Field(
        SecretStr(""), validation_alias=_env("LINKWELL_DASHBOARD_OIDC_CLIENT_SECRET")
    )
    oidc_redirect_url: str = Field(
        "",
        validation_alias=_env("LINKWELL_DASHBOARD_OIDC_REDIRECT_URL"),
        description="Where the provider sends people back: <dashboard>/login/oidc/callback.",
    )
    oidc_scope: str = Field("openid", validation_alias=_env("LINKWELL_DASHBOARD_OIDC_SCOPE"))
    oidc_subject_claim: str = Field(
        "sub",
        validation_alias=_env("LINKWELL_DASHBOARD_OIDC_SUBJECT_CLAIM"),
        description="The id_token claim naming the person; an account made with "
        "`linkwell access account add --oidc-subject VALUE` signs in with it.",
    )
    oidc_required_claims: dict[str, str] = Field(
        default_factory=dict,
        validation_alias=_env("LINKWELL_DASHBOARD_OIDC_REQUIRED_CLAIMS"),
        description="Claims the id_token must carry with these values, as JSON: "
        '{"<claim>": "<value>"} (the values the provider documents); any other value '
        "refuses the sign-in.",
    )

    @field_validator("oidc_required_claims", mode="before")
    @classmethod
    def _claims(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) and value.strip() else value or {}

    def cookies_secure(self, mode: str) -> bool:
        return self.secure_cookies if self.secure_cookies is not None else mode != "development"

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id)
