"""`stale-tmp`: a Warden remediation plugin in plain Python.

`plan` lists the regular files named `*.tmp` directly inside one granted directory that were
last modified more than `older_than_days` days ago, and changes nothing. `apply` deletes exactly
the approved actions, after checking each again (still in that directory, still a `.tmp` file,
still old enough): an approved list may be stale or may not come from this plugin's own plan.
"""

import json
import time

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.remediation import Action, ActionKind, ActionOutcome, OutcomeStatus
from wit_world.imports import fs, fs_write, log
from wit_world.imports.types import CapError_Denied, CapError_NotFound, Field, PluginError

SECS_PER_DAY = 24 * 60 * 60
SUFFIX = ".tmp"


class Config:
    """The plugin's configuration; the runner validated it against plugin.toml's schema."""

    def __init__(self, text: str):
        raw = json.loads(text)
        directory = raw["dir"]
        if not directory.startswith("/") or "/../" in directory + "/" or "\\" in directory:
            raise Err(PluginError("bad-config", f"dir must be an absolute path: {directory}"))
        # Trailing separators would make `parent_of` comparisons fail for no reason.
        self.dir = directory.rstrip("/") or "/"
        self.older_than_days = raw.get("older_than_days", 7)
        self.max_files = raw.get("max_files", 1000)

    def path_of(self, name: str) -> str:
        return f"{self.dir}/{name}" if self.dir != "/" else f"/{name}"

    def is_stale(self, meta: fs.Metadata, now: float) -> bool:
        if meta.kind != fs.EntryKind.FILE:
            return False
        if self.older_than_days == 0:
            return True
        # Without a modification time the age cannot be shown, so the file stays.
        if meta.modified_secs is None:
            return False
        return meta.modified_secs <= now - self.older_than_days * SECS_PER_DAY


def cap_error(e: Err) -> PluginError:
    """A capability's refusal, as the plugin's error (a denial keeps its own code)."""
    if isinstance(e.value, CapError_Denied):
        return PluginError("denied", e.value.value)
    return PluginError("fs-error", str(e.value))


class Remediation(exports.Remediation):
    def plan(self, config: str) -> list[Action]:
        cfg = Config(config)
        now = time.time()
        try:
            entries = fs.list_dir(cfg.dir)
        except Err as e:
            raise Err(cap_error(e))
        stale = sorted(
            (e for e in entries if e.name.endswith(SUFFIX) and cfg.is_stale(e.metadata, now)),
            key=lambda e: e.name,
        )
        if len(stale) > cfg.max_files:
            log.emit(
                log.Level.WARN,
                "more stale files than max_files; planning only the first ones",
                [Field("found", str(len(stale))), Field("max_files", str(cfg.max_files))],
            )
            stale = stale[: cfg.max_files]
        return [
            Action(
                id=f"delete-{i + 1}",
                kind=ActionKind.DELETE,
                target=cfg.path_of(e.name),
                description=f"delete {e.name} ({e.metadata.size} bytes)",
            )
            for i, e in enumerate(stale)
        ]

    def apply(self, config: str, actions: list[Action]) -> list[ActionOutcome]:
        cfg = Config(config)
        now = time.time()
        outcomes = []
        for i, action in enumerate(actions):
            if i >= cfg.max_files:
                outcomes.append(outcome(action, OutcomeStatus.SKIPPED, "beyond max_files"))
            else:
                outcomes.append(apply_one(cfg, action, now))
        return outcomes


def outcome(action: Action, status: OutcomeStatus, detail: str) -> ActionOutcome:
    return ActionOutcome(id=action.id, status=status, detail=detail)


def apply_one(cfg: Config, action: Action, now: float) -> ActionOutcome:
    """Delete one approved file after checking again everything the plan relied on."""
    if action.kind != ActionKind.DELETE:
        return outcome(action, OutcomeStatus.SKIPPED, "not a delete action")
    parent, _, name = action.target.rpartition("/")
    if (parent or "/") != cfg.dir or not name.endswith(SUFFIX) or name in ("", ".", ".."):
        return outcome(
            action, OutcomeStatus.SKIPPED, f"{action.target} is not a {SUFFIX} file in {cfg.dir}"
        )
    try:
        meta = fs.stat(action.target)
    except Err as e:
        if isinstance(e.value, CapError_NotFound):
            return outcome(action, OutcomeStatus.SKIPPED, "already gone")
        return outcome(action, OutcomeStatus.FAILED, str(e.value))
    if not cfg.is_stale(meta, now):
        return outcome(action, OutcomeStatus.SKIPPED, "no longer a stale regular file")
    try:
        fs_write.remove_file(action.target)
    except Err as e:
        return outcome(action, OutcomeStatus.FAILED, str(e.value))
    log.emit(log.Level.INFO, "deleted", [Field("path", action.target)])
    return outcome(action, OutcomeStatus.APPLIED, f"deleted {name}")
