//! The directory being cleaned, and the path rules that keep `apply` inside it: a target must be
//! the directory joined with one plain file name, in the host's own path syntax.

/// An absolute directory path without a trailing separator (except a bare root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dir {
    path: String,
    separator: char,
}

impl Dir {
    /// Accepts absolute Unix paths (`/tmp`) and Windows paths (`C:\Temp`, `\\server\share`).
    pub fn new(path: &str) -> Result<Dir, String> {
        let separator = if path.contains('\\') { '\\' } else { '/' };
        let absolute = path.starts_with('/') || path.starts_with("\\\\") || is_drive_root(path);
        if !absolute {
            return Err(format!("dir must be an absolute path, got {path:?}"));
        }
        if path.split(['/', '\\']).any(|part| part == "..") {
            return Err(format!("dir must not contain `..`, got {path:?}"));
        }
        let trimmed = path.trim_end_matches(separator);
        // Keep a root such as `/` or `C:\` whole; trimming it would change its meaning.
        let path = if trimmed.is_empty() || trimmed.ends_with(':') {
            path.to_string()
        } else {
            trimmed.to_string()
        };
        Ok(Dir { path, separator })
    }

    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// The full path of file `name` in this directory.
    pub fn join(&self, name: &str) -> String {
        if self.path.ends_with(self.separator) {
            format!("{}{name}", self.path)
        } else {
            format!("{}{}{name}", self.path, self.separator)
        }
    }

    /// True when `target` is this directory joined with one plain file name.
    pub fn contains_directly(&self, target: &str) -> bool {
        let Some(name) = target.strip_prefix(&self.path) else {
            return false;
        };
        let name = if self.path.ends_with(self.separator) {
            name
        } else {
            match name.strip_prefix(self.separator) {
                Some(name) => name,
                None => return false,
            }
        };
        !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
    }
}

fn is_drive_root(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.len() >= 3 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' && bytes[2] == b'\\'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(path: &str) -> Dir {
        Dir::new(path).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn joins_with_the_host_separator() {
        assert_eq!(dir("/tmp").join("a.log"), "/tmp/a.log");
        assert_eq!(dir("/tmp/").join("a.log"), "/tmp/a.log");
        assert_eq!(dir("/").join("a"), "/a");
        assert_eq!(dir("C:\\Temp").join("a.log"), "C:\\Temp\\a.log");
        assert_eq!(dir("C:\\").join("a.log"), "C:\\a.log");
    }

    #[test]
    fn rejects_relative_or_escaping_dirs() {
        assert!(Dir::new("tmp").is_err());
        assert!(Dir::new("").is_err());
        assert!(Dir::new("/tmp/../etc").is_err());
    }

    #[test]
    fn only_direct_children_are_contained() {
        let d = dir("/tmp");
        assert!(d.contains_directly("/tmp/a.log"));
        assert!(!d.contains_directly("/tmp"));
        assert!(!d.contains_directly("/tmp/"));
        assert!(!d.contains_directly("/tmp/sub/a.log"));
        assert!(!d.contains_directly("/tmp/.."));
        assert!(!d.contains_directly("/tmpfoo"));
        assert!(!d.contains_directly("/etc/passwd"));
        assert!(dir("C:\\Temp").contains_directly("C:\\Temp\\x"));
        assert!(!dir("C:\\Temp").contains_directly("C:\\Temp\\sub\\x"));
    }
}
