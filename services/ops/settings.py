"""Settings only the operator tools use."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OpsSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    management_url: str = Field(
        "http://127.0.0.1:15672",
        validation_alias=AliasChoices("RABBITMQ_MANAGEMENT_URL"),
        description="RabbitMQ management API, for `linkwell access apply`; the "
        "credentials are AMQP_URL's.",
    )
