"""`{{name}}`: a Warden check plugin in Python.

It measures the size of one file and judges it against `max_bytes`: `critical` at the maximum,
`warning` from `warning_percent` of it, `unknown` when the file is missing.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.check import CheckResult, Metric, Status
from wit_world.imports import fs, log
from wit_world.imports.types import CapError_NotFound, Field, PluginError


def parse_config(text: str) -> dict:
    """The configuration; the runner has already checked it against plugin.toml's schema."""
    # No configuration at all arrives as "" or "null".
    return json.loads(text) if text.strip() not in ("", "null") else {}


def cap_error(e: Err) -> Err:
    """A capability's failure as the plugin's error, keeping the WIT case as its code."""
    case = type(e.value).__name__.removeprefix("CapError_")
    code = "".join("-" + c.lower() if c.isupper() else c for c in case).lstrip("-")
    return Err(PluginError(code=code, message=str(getattr(e.value, "value", case))))


def judge(size: int, max_bytes: int, warning_percent: float) -> Status:
    if size >= max_bytes:
        return Status.CRITICAL
    if size >= max_bytes * warning_percent / 100:
        return Status.WARNING
    return Status.OK


class Check(exports.Check):
    def check(self, config: str) -> CheckResult:
        cfg = parse_config(config)
        path = cfg["path"]
        max_bytes = cfg["max_bytes"]
        warning_percent = cfg.get("warning_percent", 80)
        try:
            meta = fs.stat(path)
        except Err as e:
            # A missing file is an answer about the machine, not a failure of the plugin.
            if isinstance(e.value, CapError_NotFound):
                return CheckResult(Status.UNKNOWN, f"{path} does not exist", [])
            raise cap_error(e)
        if meta.kind != fs.EntryKind.FILE:
            return CheckResult(Status.UNKNOWN, f"{path} is not a regular file", [])
        log.emit(log.Level.INFO, "measured file", [Field("path", path), Field("bytes", str(meta.size))])
        return CheckResult(
            judge(meta.size, max_bytes, warning_percent),
            f"{path}: {meta.size} of {max_bytes} bytes",
            [Metric("size", float(meta.size), "bytes")],
        )
