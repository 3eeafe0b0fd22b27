"""`dir-quota`: a Warden check plugin in plain Python.

It lists one granted directory (not recursively), counts its regular files and their bytes, and
judges both against thresholds: `critical` at the maximum, `warning` at `warning_percent` of it.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.check import CheckResult, Metric, Status
from wit_world.imports import fs, log
from wit_world.imports.types import CapError_Denied, CapError_NotFound, Field, PluginError


def bad_config(message: str) -> Err:
    return Err(PluginError(code="bad-config", message=message))


class Config:
    """The plugin's configuration. The runner already validated it against the manifest's
    schema; these checks repeat what a schema cannot say (warning below critical)."""

    def __init__(self, text: str):
        raw = json.loads(text)
        self.dir = raw["dir"]
        self.max_files = raw.get("max_files")
        self.max_bytes = raw.get("max_bytes")
        self.warning_percent = raw.get("warning_percent", 80)
        if self.max_files is None and self.max_bytes is None:
            raise bad_config("set max_files, max_bytes or both")


def judge(value: int, maximum, warning_percent) -> Status:
    if maximum is None:
        return Status.OK
    if value >= maximum:
        return Status.CRITICAL
    if value >= maximum * warning_percent / 100:
        return Status.WARNING
    return Status.OK


def worst(a: Status, b: Status) -> Status:
    order = [Status.OK, Status.WARNING, Status.CRITICAL, Status.UNKNOWN]
    return a if order.index(a) >= order.index(b) else b


class Check(exports.Check):
    def check(self, config: str) -> CheckResult:
        cfg = Config(config)
        try:
            entries = fs.list_dir(cfg.dir)
        except Err as e:
            # A refused or missing directory is the plugin's answer, not a crash: report it.
            if isinstance(e.value, CapError_NotFound):
                return CheckResult(Status.CRITICAL, f"{cfg.dir} does not exist", [])
            if isinstance(e.value, CapError_Denied):
                raise Err(PluginError(code="denied", message=e.value.value))
            raise Err(PluginError(code="fs-error", message=str(e.value)))

        files = [e for e in entries if e.metadata.kind == fs.EntryKind.FILE]
        count = len(files)
        total = sum(e.metadata.size for e in files)
        status = worst(
            judge(count, cfg.max_files, cfg.warning_percent),
            judge(total, cfg.max_bytes, cfg.warning_percent),
        )
        log.emit(
            log.Level.INFO,
            "measured directory",
            [Field("dir", cfg.dir), Field("files", str(count)), Field("bytes", str(total))],
        )
        return CheckResult(
            status,
            f"{cfg.dir}: {count} files, {total} bytes",
            [Metric("files", float(count), ""), Metric("bytes", float(total), "bytes")],
        )
