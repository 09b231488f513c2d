"""notify's own settings, from the environment (the shared ones are
``services.runtime.settings``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class NotifySettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    notify_channel: Literal["file", "smtp"] = Field(
        "file",
        validation_alias=_env("LINKWELL_NOTIFY_CHANNEL"),
        description="`file` (spool) or `smtp` for email.",
    )
    notify_spool_dir: Path = Field(
        Path("var/notifications"),
        validation_alias=_env("LINKWELL_NOTIFY_SPOOL_DIR"),
        description="Spool channel directory (a folder per namespace, a file per medium).",
    )
    smtp_host: str = Field("127.0.0.1", validation_alias=_env("LINKWELL_SMTP_HOST"))
    smtp_port: int = Field(25, validation_alias=_env("LINKWELL_SMTP_PORT"))
    smtp_sender: str = Field(
        "linkwell@linkwell.invalid", validation_alias=_env("LINKWELL_SMTP_SENDER")
    )
    notify_max_attempts: int = Field(
        15,
        ge=1,
        le=30,
        validation_alias=_env("LINKWELL_NOTIFY_MAX_ATTEMPTS"),
        description="Failed sends of one message before it is given up (a refused one is "
        "retried after 1, 2, 4... seconds, at most an hour apart: 15 attempts span about "
        "three hours; a channel that cannot be reached charges only the message that met "
        "it, and the rest wait for it untried); then the team is told by "
        "notification.failed.v1.",
    )
    notify_retain_sent_days: float = Field(
        30.0,
        gt=0,
        validation_alias=_env("LINKWELL_NOTIFY_RETAIN_SENT_DAYS"),
        description="Days a sent or given-up message keeps its address and text; then "
        "only its key, audience, medium and times remain (docs/retention.md).",
    )
    notify_retain_spool_days: float = Field(
        7.0,
        gt=0,
        validation_alias=_env("LINKWELL_NOTIFY_RETAIN_SPOOL_DAYS"),
        description="Days a message stays in a spool file for the process that sends it.",
    )
    team_address_template: str = Field(
        "social-prescribing-{pcn}@linkwell.invalid",
        validation_alias=_env("LINKWELL_TEAM_ADDRESS_TEMPLATE"),
        description="Where a PCN's link worker team is told of its assignments.",
    )
