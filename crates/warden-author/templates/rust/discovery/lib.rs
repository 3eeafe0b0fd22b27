//! `{{name}}`: a Warden discovery plugin. It reads os-release(5) and reports one fact group
//! `os-release` with the distribution's `id`, `version-id` and `pretty-name`, plus any keys
//! listed in `extra_keys`.

use serde::Deserialize;
use warden_sdk::{CapError, Discovery, FactGroup, PluginError, fs, log};

/// The files read; `plugin.toml` requests exactly these paths.
const OS_RELEASE: &str = "/etc/os-release";
/// Where `/etc/os-release` usually links to, and the fallback os-release(5) names. A grant of
/// one file does not extend to a symlink's target, so the target is read directly.
const OS_RELEASE_FALLBACK: &str = "/usr/lib/os-release";

/// The configuration; the runner has already checked it against `plugin.toml`'s schema.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    extra_keys: Vec<String>,
}

/// `KEY=value` lines of os-release(5). Values may be quoted; `#` lines are comments.
fn parse(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let (key, value) = line.split_once('=')?;
            Some((key.trim().to_string(), unquote(value.trim())))
        })
        .collect()
}

/// Strip shell-style quotes and undo the backslash escapes os-release(5) allows in them.
fn unquote(value: &str) -> String {
    let quoted = value.len() >= 2
        && ((value.starts_with('"') && value.ends_with('"'))
            || (value.starts_with('\'') && value.ends_with('\'')));
    if !quoted {
        return value.to_string();
    }
    let inner = &value[1..value.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn lookup<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    // The last assignment wins, as when a shell sources the file.
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `VERSION_CODENAME` becomes the fact key `version-codename`.
fn fact_key(key: &str) -> String {
    key.to_ascii_lowercase().replace('_', "-")
}

struct Plugin;

impl Discovery for Plugin {
    fn discover(config: &str) -> Result<Vec<FactGroup>, PluginError> {
        let config: Config = warden_sdk::config(config)?;
        let path = match fs::stat(OS_RELEASE) {
            Ok(meta) if meta.is_file() => OS_RELEASE,
            Ok(_) | Err(CapError::NotFound(_)) => OS_RELEASE_FALLBACK,
            Err(e) => return Err(e.into()),
        };
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(CapError::NotFound(_)) => {
                return Err(PluginError::new(
                    "not-applicable",
                    format!(
                        "neither {OS_RELEASE} nor {OS_RELEASE_FALLBACK} exists, so the OS \
                         cannot be identified"
                    ),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let pairs = parse(&text);
        // Defaults from os-release(5) for keys a distribution may leave out.
        let id = lookup(&pairs, "ID").unwrap_or("linux");
        log::info("identified the OS", &[("id", id)]);
        let pretty_name = lookup(&pairs, "PRETTY_NAME").unwrap_or("Linux");
        let mut group = FactGroup::new("os-release")
            .fact("id", id)
            .fact("pretty-name", pretty_name);
        if let Some(version) = lookup(&pairs, "VERSION_ID") {
            group.push("version-id", version);
        }
        for key in &config.extra_keys {
            if let Some(value) = lookup(&pairs, key) {
                group.push(fact_key(key), value);
            }
        }
        Ok(vec![group])
    }
}

warden_sdk::discovery!(Plugin);
