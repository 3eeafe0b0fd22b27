//! Finding `TMOUT` in shell startup text: the assignments (`TMOUT=600`, `export TMOUT=600`,
//! `readonly TMOUT=600`, `declare -r TMOUT=600`, `typeset -xr TMOUT=600`) and the bare
//! `readonly TMOUT` that locks an earlier one. A line-level reading, not a shell: it does not
//! follow conditionals, which system-wide startup files rarely put around `TMOUT`.

/// One line that sets or locks `TMOUT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub path: String,
    /// 1-based.
    pub line: usize,
    /// The value as written, unquoted; empty for a bare `readonly TMOUT`.
    pub raw: String,
    /// The value when it is a literal number.
    pub seconds: Option<u64>,
    pub readonly: bool,
}

impl Setting {
    /// `file:line`.
    pub fn location(&self) -> String {
        format!("{}:{}", self.path, self.line)
    }
}

/// Every line of `text` that sets or locks `TMOUT`.
pub fn settings(path: &str, text: &str) -> Vec<Setting> {
    text.lines()
        .enumerate()
        .flat_map(|(i, line)| parse_line(line).map(|(raw, readonly)| (i, raw, readonly)))
        .map(|(i, raw, readonly)| Setting {
            path: path.to_string(),
            line: i + 1,
            seconds: raw.parse().ok(),
            raw,
            readonly,
        })
        .collect()
}

/// The statements of one line (`;`-separated), each read for a `TMOUT` word.
fn parse_line(line: &str) -> Option<(String, bool)> {
    let code = line.split('#').next().unwrap_or_default();
    code.split(';').filter_map(parse_statement).next_back()
}

fn parse_statement(statement: &str) -> Option<(String, bool)> {
    let mut words = statement.split_whitespace().peekable();
    let mut readonly = false;
    match words.peek().copied() {
        Some("export") => {
            words.next();
        }
        Some("readonly") => {
            readonly = true;
            words.next();
        }
        Some("declare" | "typeset") => {
            words.next();
            while let Some(flag) = words.peek().copied().filter(|w| w.starts_with('-')) {
                readonly |= flag.contains('r');
                words.next();
            }
        }
        _ => {}
    }
    let word = words.next()?;
    if word == "TMOUT" {
        return readonly.then(|| (String::new(), true));
    }
    let value = word.strip_prefix("TMOUT=")?;
    Some((unquote(value).to_string(), readonly))
}

fn unquote(value: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner;
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_and_locks_are_found_with_their_lines() {
        let text = "# TMOUT=1\nexport TMOUT=600\nreadonly TMOUT\nX=1; declare -xr TMOUT='300'\nTMOUT=$LIMIT\n";
        let s = settings("/etc/profile", text);
        let got: Vec<(usize, &str, Option<u64>, bool)> = s
            .iter()
            .map(|s| (s.line, s.raw.as_str(), s.seconds, s.readonly))
            .collect();
        assert_eq!(
            got,
            [
                (2, "600", Some(600), false),
                (3, "", None, true),
                (4, "300", Some(300), true),
                (5, "$LIMIT", None, false),
            ]
        );
    }
}
