"""Settings, read from the environment. The names are part of the public contract (README)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import platformdirs
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("booking-guard")) / "postgres"


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class Settings(BaseSettings):
    """Every knob of the service, with the defaults a first run needs."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    database_url: str | None = Field(None, validation_alias=_env("DATABASE_URL"))
    data_dir: Path = Field(
        default_factory=_default_data_dir, validation_alias=_env("BOOKING_GUARD_DATA_DIR")
    )
    calcom_api_key: SecretStr | None = Field(None, validation_alias=_env("CALCOM_API_KEY"))
    calcom_base_url: str = Field("https://api.cal.com", validation_alias=_env("CALCOM_BASE_URL"))
    api_tokens: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("BOOKING_GUARD_API_TOKENS")
    )
    retell_api_key: SecretStr | None = Field(None, validation_alias=_env("RETELL_API_KEY"))
    calcom_webhook_secret: SecretStr | None = Field(
        None, validation_alias=_env("CALCOM_WEBHOOK_SECRET")
    )
    freshness_max_age_seconds: float = Field(
        30.0, ge=0, validation_alias=_env("BOOKING_GUARD_FRESHNESS_MAX_AGE_SECONDS")
    )
    fallback_email: str | None = Field(None, validation_alias=_env("BOOKING_GUARD_FALLBACK_EMAIL"))
    recovery_grace_seconds: float = Field(
        150.0, gt=0, validation_alias=_env("BOOKING_GUARD_RECOVERY_GRACE_SECONDS")
    )
    recovery_interval_seconds: float = Field(
        10.0, ge=0, validation_alias=_env("BOOKING_GUARD_RECOVERY_INTERVAL_SECONDS")
    )
    shutdown_timeout_seconds: float = Field(
        25.0, ge=0, validation_alias=_env("BOOKING_GUARD_SHUTDOWN_TIMEOUT_SECONDS")
    )
    ready_max_projection_lag_seconds: float = Field(
        30.0, gt=0, validation_alias=_env("BOOKING_GUARD_READY_MAX_PROJECTION_LAG_SECONDS")
    )
    ready_max_transaction_seconds: float = Field(
        30.0, gt=0, validation_alias=_env("BOOKING_GUARD_READY_MAX_TRANSACTION_SECONDS")
    )
    orphan_grace_seconds: float = Field(
        600.0, gt=0, validation_alias=_env("BOOKING_GUARD_ORPHAN_GRACE_SECONDS")
    )
    orphan_policy: Literal["cancel", "alert"] = Field(
        "cancel", validation_alias=_env("BOOKING_GUARD_ORPHAN_POLICY")
    )
    auto_migrate: bool = Field(True, validation_alias=_env("BOOKING_GUARD_AUTO_MIGRATE"))
    host: str = Field("127.0.0.1", validation_alias=_env("BOOKING_GUARD_HOST"))
    port: int = Field(8080, ge=0, le=65535, validation_alias=_env("BOOKING_GUARD_PORT"))
    pool_max_size: int = Field(10, ge=1, validation_alias=_env("BOOKING_GUARD_POOL_MAX_SIZE"))
    log_format: str = Field("auto", validation_alias=_env("BOOKING_GUARD_LOG_FORMAT"))
    log_level: str = Field("INFO", validation_alias=_env("BOOKING_GUARD_LOG_LEVEL"))

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        if isinstance(value, str):
            return [token.strip() for token in value.split(",") if token.strip()]
        return value

    @field_validator("calcom_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        value = value.rstrip("/")
        if value.endswith("/v2"):
            raise ValueError("CALCOM_BASE_URL is the origin without /v2, e.g. https://api.cal.com")
        return value

    @field_validator("log_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in ("auto", "json", "human"):
            raise ValueError("BOOKING_GUARD_LOG_FORMAT is one of auto, json, human")
        return value
