//! Reading dconf's system configuration as an administrator writes it: the user profile
//! (`/etc/dconf/profile/user`: `user-db:user`, then `system-db:NAME` lines), and for each
//! system database its keyfile directory `/etc/dconf/db/NAME.d/` (INI-style files of
//! `[org/gnome/...]` groups and `key=value` lines, read in name order, a later file
//! overriding an earlier one) and its `locks/` directory (one key path per line: a key users
//! cannot change).
//!
//! What `dconf update` compiled into the binary database is not read: a keyfile edited and not
//! yet compiled is judged as if it were in effect (documented in docs/COMPLIANCE.md).

/// One `key=value` line of a keyfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    /// Where it is written: `file:line`.
    pub at: String,
    /// The GVariant text as written (`uint32 900`, `true`, `'x'`).
    pub text: String,
}

impl Value {
    /// A number written as `900` or `uint32 900`.
    pub fn seconds(&self) -> Option<u64> {
        let text = self.text.trim();
        let number = text.strip_prefix("uint32").map(str::trim).unwrap_or(text);
        number.parse().ok()
    }

    /// `true` or `false`.
    pub fn boolean(&self) -> Option<bool> {
        match self.text.trim() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }
}

/// The system databases a user profile names, in its order (the first one wins).
pub fn system_dbs(profile: &str) -> Vec<String> {
    profile
        .lines()
        .map(str::trim)
        .filter_map(|line| line.strip_prefix("system-db:"))
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty() && !name.contains('/'))
        .collect()
}

/// The value of `group`/`key` in one keyfile (the last line that sets it), if any.
pub fn find(path: &str, text: &str, group: &str, key: &str) -> Option<Value> {
    let mut current = String::new();
    let mut found = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim().trim_matches('/').to_string();
            continue;
        }
        if current != group {
            continue;
        }
        if let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            found = Some(Value {
                at: format!("{path}:{}", i + 1),
                text: v.trim().to_string(),
            });
        }
    }
    found
}

/// Whether a locks file names `/group/key`, and on which line.
pub fn locks(path: &str, text: &str, group: &str, key: &str) -> Option<String> {
    let wanted = format!("/{group}/{key}");
    text.lines()
        .position(|line| line.trim() == wanted)
        .map(|i| format!("{path}:{}", i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_names_its_system_databases_in_order() {
        let profile = "user-db:user\nsystem-db:local\n  system-db:site \nsystem-db:../etc\n";
        assert_eq!(system_dbs(profile), ["local", "site"]);
        assert!(system_dbs("user-db:user\n").is_empty());
    }

    #[test]
    fn the_last_line_of_a_group_sets_the_key_and_other_groups_do_not() {
        let text = "# comment\n[org/gnome/desktop/session]\nidle-delay=uint32 300\n\
                    [/org/gnome/desktop/screensaver/]\nidle-delay=uint32 1\nlock-enabled = true\n\
                    [org/gnome/desktop/session]\nidle-delay=900\n";
        let idle = find("f", text, "org/gnome/desktop/session", "idle-delay").expect("set");
        assert_eq!((idle.at.as_str(), idle.seconds()), ("f:8", Some(900)));
        let on = find("f", text, "org/gnome/desktop/screensaver", "lock-enabled").expect("set");
        assert_eq!((on.at.as_str(), on.boolean()), ("f:6", Some(true)));
        assert!(find("f", text, "org/gnome/desktop/screensaver", "lock-delay").is_none());
        let odd = Value {
            at: "f:1".into(),
            text: "uint32 'x'".into(),
        };
        assert_eq!((odd.seconds(), odd.boolean()), (None, None));
    }

    #[test]
    fn a_lock_is_a_whole_line_naming_the_key_path() {
        let text =
            "/org/gnome/desktop/session/idle-delay-extra\n/org/gnome/desktop/session/idle-delay\n";
        assert_eq!(
            locks("l", text, "org/gnome/desktop/session", "idle-delay").as_deref(),
            Some("l:2")
        );
        assert!(locks("l", text, "org/gnome/desktop/screensaver", "lock-enabled").is_none());
    }
}
