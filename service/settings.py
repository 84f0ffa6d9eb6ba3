"""Settings, read from the environment. The names are part of the public contract (README)."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import platformdirs
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

# Read from the environment itself (not from .env): they say where the other settings come from.
# The test suite sets BOOKING_GUARD_ENV_FILE to "" so that a developer's .env changes no test.
ENV_FILE_VARIABLE = "BOOKING_GUARD_ENV_FILE"
DEFAULT_ENV_FILE = ".env"
SECRETS_DIR_VARIABLE = "BOOKING_GUARD_SECRETS_DIR"


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("booking-guard")) / "postgres"


MIN_TOKEN_LENGTH = 16
MAX_FALLBACK_LOCAL_PART = 32
FALLBACK_MAILBOX = re.compile(
    rf"[A-Za-z0-9_+-](?:[A-Za-z0-9_.+-]{{0,{MAX_FALLBACK_LOCAL_PART - 2}}}[A-Za-z0-9_+-])?"
    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
)

# Field name → the environment variable a person sets: errors name what they can change.
ENV_NAMES: dict[str, str] = {}

_AGENTS_SHAPE = (
    'expected {"<agent_id>": {"<service name>": <event type id> | {"event_type_id", '
    '"length_in_minutes"?, "location"?, "language"?, "guests"?, "booking_fields"?}}}'
)


class RetellService(BaseModel):
    """One service a Retell agent offers: its event type and what its bookings carry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_type_id: int = Field(gt=0, lt=2**63)
    length_in_minutes: int | None = Field(None, ge=1, le=24 * 60)
    location: str | None = Field(None, min_length=1, max_length=500)
    language: str | None = Field(None, pattern=r"^[a-z]{2}(-[A-Za-z0-9]{2,4})?$")
    guests: list[str] = Field(default_factory=list, max_length=10)
    booking_fields: dict[str, Any] = Field(default_factory=dict)


Agents = dict[str, dict[str, RetellService]]


def _agents_from_json(text: str, name: str) -> object:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"{name} is not JSON ({e}); {_AGENTS_SHAPE}") from e


def _services_as_objects(value: object) -> object:
    """`{"Beratung": 1001}` is short for `{"Beratung": {"event_type_id": 1001}}`."""
    if not isinstance(value, dict):
        return value
    return {
        agent: {
            name: {"event_type_id": service} if isinstance(service, int) else service
            for name, service in services.items()
        }
        if isinstance(services, dict)
        else services
        for agent, services in value.items()
    }


def _checked_agents(agents: Agents, name: str) -> Agents:
    for agent_id, services in agents.items():
        if not agent_id or not services:
            raise ValueError(
                f"{name}: agent {agent_id!r} needs at least one service; {_AGENTS_SHAPE}"
            )
        for service in services:
            if not service.strip():
                raise ValueError(f"{name}: agent {agent_id!r} has a service without a name")
    return agents


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


def check_tokens(tokens: list[str]) -> list[str]:
    """The tokens, when each is a real secret; ValueError naming the setting otherwise."""
    # From the environment, "", "," and " , " split into empty tokens; [] is only ever given in
    # code, meaning unset.
    if any(not token for token in tokens):
        raise ValueError(
            "BOOKING_GUARD_API_TOKENS is set but holds an empty token: unset it to run without "
            "tokens, or give comma-separated tokens"
        )
    short = [token for token in tokens if len(token) < MIN_TOKEN_LENGTH]
    if short:
        raise ValueError(
            f"BOOKING_GUARD_API_TOKENS holds {len(short)} token(s) shorter than "
            f"{MIN_TOKEN_LENGTH} characters: use long random tokens"
        )
    return tokens


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
    # Requests a minute per Cal.com key, until Cal.com announces its own; 0: no limiter.
    calcom_rate_limit: int = Field(
        120, ge=0, validation_alias=_env("BOOKING_GUARD_CALCOM_RATE_LIMIT")
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
    recovery_max_tries: int = Field(
        10, ge=1, validation_alias=_env("BOOKING_GUARD_RECOVERY_MAX_TRIES")
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
    reconcile_interval_seconds: float = Field(
        900.0, ge=0, validation_alias=_env("BOOKING_GUARD_RECONCILE_INTERVAL_SECONDS")
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
    allow_anonymous: bool = Field(False, validation_alias=_env("BOOKING_GUARD_ALLOW_ANONYMOUS"))
    header_timeout_seconds: float = Field(
        10.0, gt=0, validation_alias=_env("BOOKING_GUARD_HEADER_TIMEOUT_SECONDS")
    )
    body_timeout_seconds: float = Field(
        30.0, gt=0, validation_alias=_env("BOOKING_GUARD_BODY_TIMEOUT_SECONDS")
    )
    max_connections: int = Field(1000, ge=1, validation_alias=_env("BOOKING_GUARD_MAX_CONNECTIONS"))
    # Which event type each Retell agent's services book: {"<agent_id>": {"Beratung": 1001}}.
    retell_agents: Annotated[dict[str, dict[str, RetellService]], NoDecode] = Field(
        default_factory=dict, validation_alias=_env("BOOKING_GUARD_RETELL_AGENTS")
    )
    retell_agents_file: Path | None = Field(
        None, validation_alias=_env("BOOKING_GUARD_RETELL_AGENTS_FILE")
    )

    # Where secrets come from besides the environment: a directory of files named like the
    # variables (Docker and Kubernetes secrets); named here so that a wrong path is an error.
    secrets_dir: Path | None = Field(None, validation_alias=_env(SECRETS_DIR_VARIABLE))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The environment first, then `.env` in the working directory, then the secrets
        directory: the first that names a setting wins."""
        sources = [init_settings, env_settings]
        env_file = os.environ.get(ENV_FILE_VARIABLE, DEFAULT_ENV_FILE)
        if env_file:
            # A missing file is no error: most deployments have none.
            sources.append(
                DotEnvSettingsSource(settings_cls, env_file=env_file, env_file_encoding="utf-8")
            )
        secrets_dir = os.environ.get(SECRETS_DIR_VARIABLE)
        if secrets_dir and Path(secrets_dir).is_dir():
            # It strips each file, so the newline `echo` and Kubernetes leave at the end is not
            # part of the secret; a file of whitespace alone reads as "" and is refused below.
            sources.append(SecretsSettingsSource(settings_cls, secrets_dir=secrets_dir))
        return tuple(sources)

    @field_validator("secrets_dir", mode="before")
    @classmethod
    def _secrets_dir_not_blank(cls, value: object) -> object:
        # Path("") is the working directory: a blank value must not quietly mean "here".
        if isinstance(value, str) and not value.strip():
            raise ValueError(
                f"{SECRETS_DIR_VARIABLE} is set but empty: unset it or name a directory"
            )
        return value

    @field_validator("secrets_dir")
    @classmethod
    def _secrets_dir_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{SECRETS_DIR_VARIABLE}: {value} is not a directory")
        return value

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        if isinstance(value, str):
            return [token.strip() for token in value.split(",")]
        return value

    @field_validator("api_tokens")
    @classmethod
    def _strong_tokens(cls, tokens: list[str]) -> list[str]:
        # Set but empty used to mean "no token", i.e. an open API: a typo in a deployment must
        # stop the process instead (unset is the explicit way to run without tokens).
        return check_tokens(tokens)

    @field_validator("calcom_api_key", "retell_api_key", "calcom_webhook_secret")
    @classmethod
    def _secret_not_blank(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        # An empty webhook secret made the webhooks verify HMACs keyed with "" (anyone can sign
        # those); unset disables the feature, set-but-blank is a mistake.
        if value is not None and not value.get_secret_value().strip():
            name = ENV_NAMES[str(info.field_name)]
            raise ValueError(f"{name} is set but empty: unset it or give it a value")
        return value

    @field_validator("fallback_email")
    @classmethod
    def _fallback_mailbox(cls, value: str | None) -> str | None:
        # Each call's address is <local>+<tag>@<domain> within 64 octets of local part; a local
        # part this short leaves a tag room enough to stay distinct per call (attempt.py).
        if value is not None and not FALLBACK_MAILBOX.fullmatch(value):
            raise ValueError(
                "BOOKING_GUARD_FALLBACK_EMAIL must be an address whose local part is 1 to "
                f"{MAX_FALLBACK_LOCAL_PART} characters of A-Z a-z 0-9 . _ + -, e.g. "
                "termin@example.com"
            )
        return value

    @field_validator("calcom_rate_limit", mode="before")
    @classmethod
    def _per_minute(cls, value: object) -> object:
        # "120" and "120/min" both mean 120 requests a minute, Cal.com's own unit.
        if isinstance(value, str) and value.strip().lower().endswith("/min"):
            return value.strip()[: -len("/min")].strip()
        return value

    @field_validator("retell_agents", mode="before")
    @classmethod
    def _agents_json(cls, value: object) -> object:
        if isinstance(value, str):
            value = _agents_from_json(value, "BOOKING_GUARD_RETELL_AGENTS")
        return _services_as_objects(value)

    @field_validator("retell_agents")
    @classmethod
    def _agents_valid(cls, value: Agents) -> Agents:
        return _checked_agents(value, "BOOKING_GUARD_RETELL_AGENTS")

    @model_validator(mode="after")
    def _agents_file(self) -> Settings:
        path = self.retell_agents_file
        if path is None:
            return self
        name = "BOOKING_GUARD_RETELL_AGENTS_FILE"
        if self.retell_agents:
            raise ValueError(f"set BOOKING_GUARD_RETELL_AGENTS or {name}, not both")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"{name}: cannot read {path}: {e}") from e
        agents = _services_as_objects(_agents_from_json(text, name))
        try:
            parsed = TypeAdapter(Agents).validate_python(agents)
        except ValidationError as e:
            raise ValueError(f"{name}: {_AGENTS_SHAPE}: {e}") from e
        self.retell_agents = _checked_agents(parsed, name)
        return self

    @model_validator(mode="after")
    def _calcom_key_for_base_url(self) -> Settings:
        # Without a key the service books against its built-in simulator, whatever
        # CALCOM_BASE_URL says: a deployment that set the URL and lost the key would look
        # healthy while booking nothing real.
        if "calcom_base_url" in self.model_fields_set and self.calcom_api_key is None:
            raise ValueError(
                f"CALCOM_BASE_URL is set ({self.calcom_base_url}) but CALCOM_API_KEY is not: set "
                "CALCOM_API_KEY to the Cal.com API key (any value, e.g. cal_dummy, for a "
                "simulator), or unset CALCOM_BASE_URL to use the built-in simulator"
            )
        return self

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


for _name, _field in Settings.model_fields.items():
    _alias = _field.validation_alias
    if isinstance(_alias, AliasChoices) and isinstance(_alias.choices[0], str):
        ENV_NAMES[_name] = _alias.choices[0]

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address or name (an empty host means every address)."""
    if host.strip().lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        # A host name may resolve to anything: only the names above count as loopback.
        return False


def anonymous_exposure(settings: Settings, host: str) -> str | None:
    """Why serving on `host` must not start (no token, not loopback), or None when it may.

    Like Redis's protected mode: without tokens the API is open, which is fine on loopback for a
    developer, and an accident anywhere else unless BOOKING_GUARD_ALLOW_ANONYMOUS says otherwise.
    """
    if settings.api_tokens or settings.allow_anonymous or is_loopback(host):
        return None
    return (
        f"refusing to listen on {host or 'every address'!s} without BOOKING_GUARD_API_TOKENS: "
        "the API would accept requests from anyone; set BOOKING_GUARD_API_TOKENS, listen on "
        "127.0.0.1, or set BOOKING_GUARD_ALLOW_ANONYMOUS=true"
    )


def describe_invalid(error: ValidationError) -> str:
    """One line per invalid setting, naming its environment variable."""
    lines = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else ""
        name = ENV_NAMES.get(field, field.upper())
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"  {message}" if name in message else f"  {name}: {message}")
    return "\n".join(lines)
