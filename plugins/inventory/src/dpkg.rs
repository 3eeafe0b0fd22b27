//! Parser for the dpkg status database (`/var/lib/dpkg/status`): RFC 822-style paragraphs, one
//! per package, separated by blank lines. Only what the inventory needs is extracted.

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub architecture: String,
}

/// Packages whose `Status` is `install ok installed`, in file order. Paragraphs without a
/// package name are ignored rather than failing the whole inventory.
pub fn installed_packages(status_file: &str) -> Vec<Package> {
    let mut packages = Vec::new();
    let mut current = Paragraph::default();
    for line in status_file.lines() {
        if line.trim().is_empty() {
            packages.extend(current.take().into_installed());
            continue;
        }
        // Continuation lines (leading space or tab) belong to multi-line fields we do not use.
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((field, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim().to_string();
        // Field names are case-insensitive in Debian control files.
        if field.eq_ignore_ascii_case("Package") {
            current.name = Some(value);
        } else if field.eq_ignore_ascii_case("Status") {
            current.status = Some(value);
        } else if field.eq_ignore_ascii_case("Version") {
            current.version = Some(value);
        } else if field.eq_ignore_ascii_case("Architecture") {
            current.architecture = Some(value);
        }
    }
    packages.extend(current.into_installed());
    packages
}

#[derive(Debug, Default)]
struct Paragraph {
    name: Option<String>,
    status: Option<String>,
    version: Option<String>,
    architecture: Option<String>,
}

impl Paragraph {
    fn take(&mut self) -> Paragraph {
        std::mem::take(self)
    }

    fn into_installed(self) -> Option<Package> {
        let status = self.status?;
        // The three words are the selection, the error flag and the state.
        let words: Vec<&str> = status.split_whitespace().collect();
        if words != ["install", "ok", "installed"] {
            return None;
        }
        Some(Package {
            name: self.name.filter(|n| !n.is_empty())?,
            version: self.version.unwrap_or_default(),
            architecture: self.architecture.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
Package: bash
Status: install ok installed
Priority: required
Architecture: amd64
Version: 5.2.15-2+b2
Description: GNU Bourne Again SHell
 Bash is an sh-compatible command language interpreter.
 .
 Status: not a real field

Package: removed-pkg
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

package: libc6
status: install ok installed
architecture: amd64
version: 2.36-9
";

    #[test]
    fn keeps_only_installed_packages() {
        let pkgs = installed_packages(SAMPLE);
        assert_eq!(
            pkgs,
            vec![
                Package {
                    name: "bash".into(),
                    version: "5.2.15-2+b2".into(),
                    architecture: "amd64".into(),
                },
                Package {
                    name: "libc6".into(),
                    version: "2.36-9".into(),
                    architecture: "amd64".into(),
                },
            ]
        );
    }

    #[test]
    fn tolerates_empty_and_garbled_input() {
        assert!(installed_packages("").is_empty());
        assert!(installed_packages("\n\nno colon here\nStatus: install ok installed\n").is_empty());
    }
}
