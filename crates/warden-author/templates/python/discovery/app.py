"""`{{name}}`: a Warden discovery plugin in Python.

It reads os-release(5) and reports one fact group `os-release` with the distribution's
`id`, `version-id` and `pretty-name`, plus any keys listed in `extra_keys`.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.discovery import Fact, FactGroup, FactValue_Text
from wit_world.imports import fs, log
from wit_world.imports.types import CapError_NotFound, Field, PluginError

# The files read; plugin.toml requests exactly these paths.
OS_RELEASE = "/etc/os-release"
# Where /etc/os-release usually links to, and the fallback os-release(5) names. A grant of one
# file does not extend to a symlink's target, so the target is read directly.
OS_RELEASE_FALLBACK = "/usr/lib/os-release"


def parse_config(text: str) -> dict:
    """The configuration; the runner has already checked it against plugin.toml's schema."""
    # No configuration at all arrives as "" or "null".
    return json.loads(text) if text.strip() not in ("", "null") else {}


def cap_error(e: Err) -> Err:
    """A capability's failure as the plugin's error, keeping the WIT case as its code."""
    case = type(e.value).__name__.removeprefix("CapError_")
    code = "".join("-" + c.lower() if c.isupper() else c for c in case).lstrip("-")
    return Err(PluginError(code=code, message=str(getattr(e.value, "value", case))))


def unquote(value: str) -> str:
    """Strip shell-style quotes and undo the backslash escapes os-release(5) allows in them."""
    if len(value) < 2 or value[0] != value[-1] or value[0] not in "\"'":
        return value
    out, chars = [], iter(value[1:-1])
    for c in chars:
        out.append(next(chars, "") if c == "\\" else c)
    return "".join(out)


def parse(text: str) -> dict:
    """`KEY=value` lines; `#` lines are comments. The last assignment wins, as in a shell."""
    pairs = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        pairs[key.strip()] = unquote(value.strip())
    return pairs


def text(key: str, value: str) -> Fact:
    return Fact(key, FactValue_Text(value))


class Discovery(exports.Discovery):
    def discover(self, config: str) -> list[FactGroup]:
        cfg = parse_config(config)
        path = OS_RELEASE_FALLBACK
        try:
            if fs.stat(OS_RELEASE).kind == fs.EntryKind.FILE:
                path = OS_RELEASE
        except Err as e:
            if not isinstance(e.value, CapError_NotFound):
                raise cap_error(e)
        try:
            content = bytes(fs.read(path)).decode("utf-8")
        except Err as e:
            if isinstance(e.value, CapError_NotFound):
                raise Err(
                    PluginError(
                        "not-applicable",
                        f"neither {OS_RELEASE} nor {OS_RELEASE_FALLBACK} exists, "
                        "so the OS cannot be identified",
                    )
                )
            raise cap_error(e)
        except UnicodeDecodeError as e:
            raise Err(PluginError("invalid", f"{path} is not UTF-8: {e}"))
        pairs = parse(content)
        # Defaults from os-release(5) for keys a distribution may leave out.
        os_id = pairs.get("ID", "linux")
        log.emit(log.Level.INFO, "identified the OS", [Field("id", os_id)])
        facts = [text("id", os_id), text("pretty-name", pairs.get("PRETTY_NAME", "Linux"))]
        if "VERSION_ID" in pairs:
            facts.append(text("version-id", pairs["VERSION_ID"]))
        for key in cfg.get("extra_keys", []):
            if key in pairs:
                # VERSION_CODENAME becomes version-codename.
                facts.append(text(key.lower().replace("_", "-"), pairs[key]))
        return [FactGroup("os-release", facts)]
