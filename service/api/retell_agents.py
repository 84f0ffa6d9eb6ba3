"""Which event type a Retell function call books: from the agent's configuration, not the LLM.

An LLM can say any number; a caller talked into "event type 1005" could book what the agent was
never meant to offer. With `BOOKING_GUARD_RETELL_AGENTS` (`{"<agent_id>": {"Beratung": 1001}}`)
the functions take the service's name (`service`) and the agent's own list decides the id; a
name not on it, or an agent not configured at all, is `invalid` (fail closed). Without any
configuration the functions keep taking `event_type_id` from the arguments, with a warning at
start.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from service.settings import RetellService

# What a booking carries that only the agent's configuration may set, never the LLM: the LLM
# gives the caller's answers (`booking_fields`), the operator decides length, place and guests.
CONFIG_ONLY = ("length_in_minutes", "location", "language", "guests")


class ServiceArg(BaseModel):
    """The argument both functions take instead of `event_type_id` once agents are configured."""

    service: str = Field(
        max_length=200, description="Which of this practice's services the caller wants."
    )


class ServiceRefused(ValueError):
    """The call's arguments name no service this agent offers; `field` is the argument."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class RetellAgents:
    """The services each configured agent offers, by name (case and spacing ignored)."""

    def __init__(self, agents: Mapping[str, Mapping[str, RetellService]]) -> None:
        self._agents = {
            agent_id: {_name(name): service for name, service in services.items()}
            for agent_id, services in agents.items()
        }
        self._spelled = {agent_id: sorted(services) for agent_id, services in agents.items()}

    @property
    def configured(self) -> bool:
        """Whether any agent is configured (then every call must name a service)."""
        return bool(self._agents)

    def resolve(self, agent_id: str | None, args: Mapping[str, Any]) -> dict[str, Any]:
        """`args` with `event_type_id` and the service's options set from the agent's `service`
        (the LLM's own values of CONFIG_ONLY dropped); raises ServiceRefused."""
        given = {k: v for k, v in args.items() if k not in CONFIG_ONLY}
        if not self.configured:
            return given
        services = self._agents.get(agent_id or "")
        if services is None:
            raise ServiceRefused("agent_id", f"agent {agent_id!r} is not configured for booking")
        service = args.get("service")
        if not isinstance(service, str) or _name(service) not in services:
            offered = ", ".join(self._spelled[agent_id or ""])
            raise ServiceRefused("service", f"the service must be one of {offered}")
        chosen = services[_name(service)]
        resolved = {k: v for k, v in given.items() if k != "event_type_id"}
        resolved["event_type_id"] = chosen.event_type_id
        for name in CONFIG_ONLY:
            value = getattr(chosen, name)
            if value:
                resolved[name] = value
        answers = args.get("booking_fields")
        if chosen.booking_fields or isinstance(answers, dict):
            # The configuration's fixed answers, then the caller's.
            resolved["booking_fields"] = {
                **chosen.booking_fields,
                **(answers if isinstance(answers, dict) else {}),
            }
        return resolved


def _name(service: str) -> str:
    return " ".join(service.split()).casefold()
