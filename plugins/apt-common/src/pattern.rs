//! Package-name patterns of the deny and approve lists: `*` matches any run of characters, `?`
//! one character, anything else itself (`linux-image-*`, `openssl`, `lib*-dev`). Debian package
//! names have no other special characters, so this small glob is all the lists need.

/// Whether `name` matches `pattern` as a whole.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative glob with one backtrack point: linear in practice, never exponential.
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The first of `patterns` that `name` matches.
pub fn first_match<'a>(patterns: &'a [String], name: &str) -> Option<&'a str> {
    patterns
        .iter()
        .find(|p| matches(p, name))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs_match_whole_names() {
        assert!(matches("openssl", "openssl"));
        assert!(!matches("openssl", "openssl-dev"));
        assert!(matches("linux-image-*", "linux-image-6.1.0-18-amd64"));
        assert!(!matches("linux-image-*", "linux-headers-6.1.0"));
        assert!(matches("lib*-dev", "libssl-dev"));
        assert!(!matches("lib*-dev", "libssl3"));
        assert!(matches("libssl?", "libssl3"));
        assert!(matches("*", "anything"));
        assert!(matches("a*b*c", "axxbyyc"));
        assert!(!matches("a*b*c", "axxbyy"));
        assert!(!matches("", "x"));
    }
}
