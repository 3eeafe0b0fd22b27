"""`{{name}}`: a Warden remediation plugin in Python.

`plan` proposes restarting the configured service when it is not running; `apply` checks again,
restarts it, and reports success only when it runs afterwards.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.remediation import Action, ActionKind, ActionOutcome, OutcomeStatus
from wit_world.imports import log, service, service_control
from wit_world.imports.types import Field, PluginError


def parse_config(text: str) -> dict:
    """The configuration; the runner has already checked it against plugin.toml's schema."""
    # No configuration at all arrives as "" or "null".
    return json.loads(text) if text.strip() not in ("", "null") else {}


def cap_error(e: Err) -> Err:
    """A capability's failure as the plugin's error, keeping the WIT case as its code."""
    case = type(e.value).__name__.removeprefix("CapError_")
    code = "".join("-" + c.lower() if c.isupper() else c for c in case).lstrip("-")
    return Err(PluginError(code=code, message=str(getattr(e.value, "value", case))))


def describe(e: Err) -> str:
    """A capability's failure as text for an outcome's detail."""
    err = cap_error(e).value
    return f"{err.code}: {err.message}"


def state_name(state: service.ServiceState) -> str:
    return state.name.lower()


def action_id(name: str) -> str:
    """The id of the one action this plugin plans, so `apply` can recognise it."""
    return f"restart-{name}"


class Remediation(exports.Remediation):
    def plan(self, config: str) -> list[Action]:
        name = parse_config(config)["service"]
        try:
            state = service.status(name)
        except Err as e:
            raise cap_error(e)
        if state == service.ServiceState.RUNNING:
            return []
        return [
            Action(
                id=action_id(name),
                kind=ActionKind.SERVICE_RESTART,
                target=name,
                description=f"restart {name} (it is {state_name(state)})",
            )
        ]

    def apply(self, config: str, actions: list[Action]) -> list[ActionOutcome]:
        name = parse_config(config)["service"]
        return [apply_one(name, action) for action in actions]


def outcome(action: Action, status: OutcomeStatus, detail: str) -> ActionOutcome:
    return ActionOutcome(id=action.id, status=status, detail=detail)


def apply_one(name: str, action: Action) -> ActionOutcome:
    # The approved list may have been edited: act only on the action this plugin would plan.
    if (
        action.id != action_id(name)
        or action.kind != ActionKind.SERVICE_RESTART
        or action.target != name
    ):
        return outcome(
            action, OutcomeStatus.SKIPPED, f"not a restart of the configured service {name}"
        )
    # The plan may be stale: the service may have come back since.
    try:
        if service.status(name) == service.ServiceState.RUNNING:
            return outcome(action, OutcomeStatus.SKIPPED, "already running")
    except Err as e:
        return outcome(action, OutcomeStatus.FAILED, f"status failed: {describe(e)}")
    try:
        service_control.restart(name)
    except Err as e:
        return outcome(action, OutcomeStatus.FAILED, f"restart failed: {describe(e)}")
    log.emit(log.Level.INFO, "restarted", [Field("service", name)])
    try:
        state = service.status(name)
    except Err as e:
        return outcome(action, OutcomeStatus.FAILED, f"restarted, but status failed: {describe(e)}")
    if state != service.ServiceState.RUNNING:
        return outcome(action, OutcomeStatus.FAILED, f"restarted, but it is {state_name(state)}")
    return outcome(action, OutcomeStatus.APPLIED, "restarted; now running")
