//! The parser of `apt-get -s dist-upgrade` output (with `LC_ALL=C`, which the exec capability
//! sets for every child). apt prints one line per simulated step:
//!
//! ```text
//! Inst libssl3 [3.0.11-1~deb12u1] (3.0.11-1~deb12u2 Debian:12.5/stable, Debian-Security:12/stable-security [amd64])
//! Inst linux-image-6.1.0-18-amd64 (6.1.76-1 Debian:12.5/stable [amd64])       <- newly installed
//! Conf libssl3 (3.0.11-1~deb12u2 Debian:12.5/stable [amd64])
//! Remv oldpkg [1.0-1]
//! ```
//!
//! plus a header that lists the packages kept back (held with `apt-mark hold`, or whose upgrade
//! apt will not resolve) and one summary line `N upgraded, M newly installed, K to remove and J
//! not upgraded.`. The summary is required and must agree with the `Inst` and `Remv` lines: an
//! output cut short (the host caps a child's output) or a format this parser does not know is a
//! typed [`ParseError`], never a shorter list that looks complete. An update is a security
//! update when one of its origins names a `-security` suite (Debian's `Debian-Security:12/
//! stable-security`, Ubuntu's `Ubuntu:22.04/jammy-security`).

use serde::Serialize;
use std::fmt;

/// Whether an update fixes a security issue, as far as apt's origins say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Security,
    Normal,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Security => "security",
            Severity::Normal => "normal",
        }
    }
}

/// One package apt would install or upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Update {
    pub name: String,
    /// The installed version; `None` for a package the upgrade newly installs (a new dependency
    /// such as the next kernel image).
    pub installed: Option<String>,
    /// The version apt would install.
    pub candidate: String,
    /// Each origin as apt prints it: `Debian-Security:12/stable-security`.
    pub origins: Vec<String>,
    pub arch: String,
    pub severity: Severity,
}

impl Update {
    /// The exact pin `apt-get install` takes: `name=version`.
    pub fn pin(&self) -> String {
        format!("{}={}", self.name, self.candidate)
    }
}

/// What one simulation reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Simulation {
    /// Installed packages with a newer candidate, in apt's order.
    pub upgrades: Vec<Update>,
    /// Packages the upgrade would newly install.
    pub new: Vec<Update>,
    /// Packages the upgrade would remove.
    pub removals: Vec<String>,
    /// Packages with an update apt keeps back.
    pub kept_back: Vec<String>,
}

/// Output that cannot be trusted as a complete answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// An `Inst` or `Remv` line this parser does not understand.
    Malformed {
        line: usize,
        text: String,
        why: &'static str,
    },
    /// No `N upgraded, ...` summary line: the output was cut or is not apt's.
    NoSummary,
    /// The summary's counts disagree with the lines listed.
    CountMismatch {
        what: &'static str,
        summary: u64,
        listed: usize,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Malformed { line, text, why } => {
                write!(
                    f,
                    "apt output line {line} is not understood ({why}): {text:?}"
                )
            }
            ParseError::NoSummary => write!(
                f,
                "apt output has no `N upgraded, M newly installed, ...` line (cut short, or not apt-get -s)"
            ),
            ParseError::CountMismatch {
                what,
                summary,
                listed,
            } => write!(
                f,
                "apt's summary says {summary} {what} but {listed} are listed (output cut short?)"
            ),
        }
    }
}

impl std::error::Error for ParseError {}

const KEPT_BACK_HEADER: &str = "The following packages have been kept back:";

/// Parse the standard output of `apt-get -s dist-upgrade`.
pub fn parse(stdout: &str) -> Result<Simulation, ParseError> {
    let mut sim = Simulation::default();
    let mut summary: Option<Summary> = None;
    let mut in_kept_back = false;
    for (i, line) in stdout.lines().enumerate() {
        let line_no = i + 1;
        if in_kept_back {
            if let Some(names) = line.strip_prefix(' ') {
                sim.kept_back
                    .extend(names.split_whitespace().map(str::to_string));
                continue;
            }
            in_kept_back = false;
        }
        if line == KEPT_BACK_HEADER {
            in_kept_back = true;
        } else if let Some(rest) = line.strip_prefix("Inst ") {
            let update = parse_inst(rest).map_err(|why| ParseError::Malformed {
                line: line_no,
                text: line.to_string(),
                why,
            })?;
            if update.installed.is_some() {
                sim.upgrades.push(update);
            } else {
                sim.new.push(update);
            }
        } else if let Some(rest) = line.strip_prefix("Remv ") {
            let name = rest.split_whitespace().next().filter(|n| valid_name(n));
            let Some(name) = name else {
                return Err(ParseError::Malformed {
                    line: line_no,
                    text: line.to_string(),
                    why: "no package name",
                });
            };
            sim.removals.push(name.to_string());
        } else if let Some(s) = Summary::parse(line) {
            summary = Some(s);
        }
    }
    let summary = summary.ok_or(ParseError::NoSummary)?;
    for (what, counted, listed) in [
        ("upgraded", summary.upgraded, sim.upgrades.len()),
        ("newly installed", summary.new, sim.new.len()),
        ("to remove", summary.removed, sim.removals.len()),
    ] {
        if usize::try_from(counted).ok() != Some(listed) {
            return Err(ParseError::CountMismatch {
                what,
                summary: counted,
                listed,
            });
        }
    }
    Ok(sim)
}

/// `N upgraded, M newly installed, K to remove and J not upgraded.`
struct Summary {
    upgraded: u64,
    new: u64,
    removed: u64,
}

impl Summary {
    fn parse(line: &str) -> Option<Summary> {
        let rest = line.strip_suffix(" not upgraded.")?;
        let (upgraded, rest) = rest.split_once(" upgraded, ")?;
        let (new, rest) = rest.split_once(" newly installed, ")?;
        let (removed, _not_upgraded) = rest.split_once(" to remove and ")?;
        Some(Summary {
            upgraded: upgraded.parse().ok()?,
            new: new.parse().ok()?,
            removed: removed.parse().ok()?,
        })
    }
}

/// `NAME [OLD] (NEW ORIGIN, ORIGIN [ARCH])`, possibly followed by ` []` (apt's note of broken
/// dependencies during the simulated order, which the summary already accounts for).
fn parse_inst(rest: &str) -> Result<Update, &'static str> {
    let (name, rest) = rest.split_once(' ').ok_or("no version after the name")?;
    if !valid_name(name) {
        return Err("not a Debian package name");
    }
    let (installed, rest) = match rest.strip_prefix('[') {
        Some(r) => {
            let (old, r) = r.split_once("] ").ok_or("unclosed [installed version]")?;
            if !valid_version(old) {
                return Err("bad installed version");
            }
            (Some(old.to_string()), r)
        }
        None => (None, rest),
    };
    let inner = rest.strip_prefix('(').ok_or("no (candidate ...) part")?;
    let close = inner.find(')').ok_or("unclosed (candidate ...) part")?;
    let inner = &inner[..close];
    let (candidate, rest) = inner.split_once(' ').ok_or("no origin or architecture")?;
    if !valid_version(candidate) {
        return Err("bad candidate version");
    }
    let open = rest.rfind('[').ok_or("no [architecture]")?;
    let arch = rest[open + 1..]
        .strip_suffix(']')
        .filter(|a| !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .ok_or("bad [architecture]")?;
    let origins: Vec<String> = rest[..open]
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(str::to_string)
        .collect();
    let security = origins
        .iter()
        .any(|o| o.to_ascii_lowercase().contains("-security"));
    Ok(Update {
        name: name.to_string(),
        installed,
        candidate: candidate.to_string(),
        origins,
        arch: arch.to_string(),
        severity: if security {
            Severity::Security
        } else {
            Severity::Normal
        },
    })
}

/// Debian policy 5.6.1: lower-case letters, digits, `+ - .`, at least two characters, starting
/// with a letter or digit. (A name apt prints with `:arch` for a foreign architecture is
/// accepted too.)
pub fn valid_name(name: &str) -> bool {
    let base = name.split_once(':').map_or(name, |(b, _)| b);
    base.len() >= 2
        && base
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && base
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

/// Debian policy 5.6.12: `[epoch:]upstream[-revision]` of letters, digits and `. + ~ - :`,
/// starting with a digit.
pub fn valid_version(version: &str) -> bool {
    version.chars().next().is_some_and(|c| c.is_ascii_digit())
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".+~-:".contains(c))
}

/// Split an exact pin `name=version` as a plan carries it; `None` unless both halves are valid.
pub fn parse_pin(pin: &str) -> Option<(&str, &str)> {
    let (name, version) = pin.split_once('=')?;
    (valid_name(name) && valid_version(version)).then_some((name, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = "\
Reading package lists...
Building dependency tree...
Reading state information...
Calculating upgrade...
The following packages have been kept back:
  linux-image-amd64 nginx
The following NEW packages will be installed:
  linux-image-6.1.0-18-amd64
The following packages will be upgraded:
  bash libssl3
2 upgraded, 1 newly installed, 1 to remove and 2 not upgraded.
Remv oldpkg [1.0-1]
Inst bash [5.2.15-2+b2] (5.2.15-2+b7 Debian:12.5/stable [amd64])
Inst libssl3 [3.0.11-1~deb12u1] (3.0.11-1~deb12u2 Debian:12.5/stable, Debian-Security:12/stable-security [amd64]) []
Inst linux-image-6.1.0-18-amd64 (6.1.76-1 Debian:12.5/stable [amd64])
Conf bash (5.2.15-2+b7 Debian:12.5/stable [amd64])
Conf libssl3 (3.0.11-1~deb12u2 Debian:12.5/stable, Debian-Security:12/stable-security [amd64])
";

    #[test]
    fn reads_upgrades_new_packages_removals_and_kept_back() {
        let sim = parse(DEBIAN).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sim.upgrades.len(), 2);
        let bash = &sim.upgrades[0];
        assert_eq!(bash.name, "bash");
        assert_eq!(bash.installed.as_deref(), Some("5.2.15-2+b2"));
        assert_eq!(bash.pin(), "bash=5.2.15-2+b7");
        assert_eq!(bash.severity, Severity::Normal);
        assert_eq!(bash.arch, "amd64");
        let ssl = &sim.upgrades[1];
        assert_eq!(ssl.severity, Severity::Security);
        assert_eq!(
            ssl.origins,
            ["Debian:12.5/stable", "Debian-Security:12/stable-security"]
        );
        assert_eq!(sim.new.len(), 1);
        assert_eq!(sim.new[0].installed, None);
        assert_eq!(sim.removals, ["oldpkg"]);
        assert_eq!(sim.kept_back, ["linux-image-amd64", "nginx"]);
    }

    #[test]
    fn ubuntu_security_pockets_count_as_security() {
        let out = "Inst libc6 [2.35-0ubuntu3.5] (2.35-0ubuntu3.6 Ubuntu:22.04/jammy-updates, Ubuntu:22.04/jammy-security [amd64])\n1 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n";
        let sim = parse(out).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sim.upgrades[0].severity, Severity::Security);
        assert_eq!(sim.upgrades[0].pin(), "libc6=2.35-0ubuntu3.6");
    }

    #[test]
    fn nothing_to_do_is_an_empty_simulation() {
        let out = "Reading package lists...\nCalculating upgrade...\n0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n";
        assert_eq!(parse(out), Ok(Simulation::default()));
    }

    #[test]
    fn output_without_a_summary_or_with_missing_lines_is_an_error() {
        let cut = "Inst bash [5.2.15-2+b2] (5.2.15-2+b7 Debian:12.5/stable [amd64])\n";
        assert_eq!(parse(cut), Err(ParseError::NoSummary));
        let short = "2 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\nInst bash [1] (2 Debian:12/stable [amd64])\n";
        assert_eq!(
            parse(short),
            Err(ParseError::CountMismatch {
                what: "upgraded",
                summary: 2,
                listed: 1
            })
        );
        assert_eq!(parse(""), Err(ParseError::NoSummary));
    }

    #[test]
    fn malformed_inst_lines_are_errors_naming_the_line() {
        for (line, why) in [
            ("Inst bash", "no version after the name"),
            ("Inst Bash [1] (2 o [amd64])", "not a Debian package name"),
            ("Inst bash [1 (2 o [amd64])", "unclosed [installed version]"),
            ("Inst bash [1] 2 o [amd64]", "no (candidate ...) part"),
            (
                "Inst bash [1] (2 o [amd64]",
                "unclosed (candidate ...) part",
            ),
            ("Inst bash [1] (x2 o [amd64])", "bad candidate version"),
            ("Inst bash [1] (2 Debian:12/stable)", "no [architecture]"),
            ("Inst bash [1] (2 o [a;b])", "bad [architecture]"),
            (
                "Inst bash [1] (`reboot` o [amd64])",
                "bad candidate version",
            ),
            (
                "Inst bash [1] ($(reboot) o [amd64])",
                "no origin or architecture",
            ),
        ] {
            let text =
                format!("{line}\n1 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n");
            match parse(&text) {
                Err(ParseError::Malformed {
                    line: 1, why: got, ..
                }) => {
                    assert_eq!(got, why, "{line}")
                }
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn pins_are_checked_name_and_version() {
        assert_eq!(
            parse_pin("libssl3=3.0.11-1~deb12u2"),
            Some(("libssl3", "3.0.11-1~deb12u2"))
        );
        assert_eq!(parse_pin("bash=1:5.2-1"), Some(("bash", "1:5.2-1")));
        assert_eq!(parse_pin("-oDpkg::Pre-Invoke=x"), None);
        assert_eq!(parse_pin("bash"), None);
        assert_eq!(parse_pin("bash=1 2"), None);
        assert_eq!(parse_pin("bash=$(x)"), None);
    }
}
