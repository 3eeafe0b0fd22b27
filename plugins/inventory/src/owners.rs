//! Which process owns a listening socket: a parser for `ss -Hltunpe` (iproute2), matched to the
//! kernel's socket tables by socket inode.
//!
//! Why `ss` through `exec`, and not the plugin walking `/proc/<pid>/fd` itself: the `fs`
//! interface cannot read a symlink's target (the `socket:[inode]` of an fd), and reading
//! `/proc/<pid>/fdinfo/*` instead would need a grant on all of `/proc`, which also holds every
//! process's `environ` and `cmdline` (secrets), and would be one audited call per fd of every
//! process. One fixed argv (`/usr/bin/ss -Hltunpe`, no shell, no pattern) is one audited call
//! whose output holds the listening sockets, their inodes and the names and pids of their
//! owners, nothing else. The manifest requests it as `optional`: a site policy that does not
//! allow it (the embedded default runs no programs) narrows the grant, the call is denied and
//! audited, and every port's process is empty. `ss` sees only the processes whose fds its user
//! may read: run unprivileged, the others' sockets have no `users:` and their process is empty,
//! never guessed.
//!
//! The output is not trusted. A line is taken only when it is complete (ends in a newline: a
//! line cut at the host's output cap could end in a shorter inode) and its `users:((...))` list
//! parses exactly: `("name",pid=N,fd=N)` entries separated by `,`, then whitespace and
//! `ino:N`. A process name is what the kernel keeps (`comm`, at most 15 bytes, read by `ss` up
//! to the first `)`); a name with a `"`, a control character or more than 15 bytes cannot come
//! from there, so such a line is skipped rather than read another way. Pids are not kept: they
//! change on every restart, and a baseline would drift on them.

use std::collections::{BTreeMap, BTreeSet};

/// The fixed invocation: listening (`-l`) TCP and UDP sockets (`-t -u`), numeric (`-n`), with
/// their processes (`-p`) and inodes (`-e`), without the header (`-H`).
pub const SS: &str = "/usr/bin/ss";
pub const SS_ARGS: [&str; 1] = ["-Hltunpe"];

/// The kernel's `TASK_COMM_LEN` less its terminating NUL.
const MAX_NAME_BYTES: usize = 15;

/// Owning process names by socket inode; a socket shared by several processes (a pre-forking
/// server's workers) has each name once.
pub type Owners = BTreeMap<u64, BTreeSet<String>>;

/// The owners in `ss -Hltunpe`'s output. Lines without `users:` (sockets of processes this user
/// cannot see), incomplete lines and lines that do not parse exactly are skipped.
pub fn parse(output: &str) -> Owners {
    let mut owners = Owners::new();
    // Only lines a newline ends: what follows the last one may be cut.
    let complete = output.rsplit_once('\n').map_or("", |(lines, _)| lines);
    for line in complete.lines() {
        if let Some((inode, names)) = line_owners(line) {
            owners.entry(inode).or_default().extend(names);
        }
    }
    owners
}

/// The socket inode and owner names of one line, if it has both and parses exactly.
fn line_owners(line: &str) -> Option<(u64, Vec<String>)> {
    // Interface names (`127.0.0.53%lo`) cannot hold `:` or whitespace, and the fields before
    // the processes are numeric with `-n`: the first ` users:((` is the list's start.
    let (_, rest) = line.split_once(" users:((")?;
    let mut names = Vec::new();
    let mut rest = rest;
    loop {
        let (name, after) = entry(rest)?;
        names.push(name.to_string());
        if let Some(next) = after.strip_prefix(",(") {
            rest = next;
        } else {
            rest = after.strip_prefix(')')?;
            break;
        }
    }
    // Then whitespace and the inode, as `-e` prints it right after the processes: after the
    // socket's owner uid when that is not root (`uid:1000 ino:...`).
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    let mut fields = rest.split_whitespace();
    let mut field = fields.next()?;
    if let Some(uid) = field.strip_prefix("uid:") {
        number(uid).filter(|tail| tail.is_empty())?;
        field = fields.next()?;
    }
    let inode = field.strip_prefix("ino:")?;
    if inode.is_empty() || !inode.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((inode.parse().ok()?, names))
}

/// One `"name",pid=N,fd=N)`, the opening `(` already taken: the name and what follows the `)`.
fn entry(text: &str) -> Option<(&str, &str)> {
    let text = text.strip_prefix('"')?;
    let (name, after) = text.split_once('"')?;
    if name.is_empty() || name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control) {
        return None;
    }
    let after = number(after.strip_prefix(",pid=")?)?;
    let after = number(after.strip_prefix(",fd=")?)?;
    Some((name, after.strip_prefix(')')?))
}

/// Skip a non-empty run of ASCII digits.
fn number(text: &str) -> Option<&str> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    (digits > 0).then(|| &text[digits..])
}

/// The owner names of a listener's sockets, sorted, comma-separated; empty when none is known.
pub fn names(owners: &Owners, inodes: &[u64]) -> String {
    let names: BTreeSet<&str> = inodes
        .iter()
        .filter_map(|i| owners.get(i))
        .flatten()
        .map(String::as_str)
        .collect();
    names.into_iter().collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn owners_are_read_by_inode_and_sockets_without_visible_owners_left_out() {
        // As iproute2 6.1 prints them (Debian 12), trailing spaces included.
        let out = "udp UNCONN 0      0      127.0.0.1:8766 0.0.0.0:* users:((\"python3\",pid=24716,fd=4)) ino:730974 sk:1001 cgroup:/ <->\n\
tcp LISTEN 0      128      0.0.0.0:2024 0.0.0.0:* ino:1241 sk:1 cgroup:/ <->                                        \n\
tcp LISTEN 0      128            *:8765       *:* users:((\"python3\",pid=24716,fd=3)) ino:730973 sk:1002 cgroup:/ v6only:0 <->\n\
tcp LISTEN 0      511      0.0.0.0:80   0.0.0.0:* users:((\"nginx\",pid=812,fd=6),(\"nginx\",pid=811,fd=6),(\"nginx: worker\",pid=813,fd=6)) ino:2201 sk:3 cgroup:/system.slice/nginx.service <->\n\
udp UNCONN 0      0   127.0.0.53%lo:53   0.0.0.0:* users:((\"systemd-resolve\",pid=402,fd=13)) uid:990 ino:1900 sk:4 cgroup:/system.slice/systemd-resolved.service <->\n";
        let owners = parse(out);
        assert_eq!(owners.get(&730_974), Some(&set(&["python3"])));
        assert_eq!(owners.get(&730_973), Some(&set(&["python3"])));
        assert_eq!(owners.get(&2201), Some(&set(&["nginx", "nginx: worker"])));
        assert_eq!(
            owners.get(&1241),
            None,
            "no users: not visible, not guessed"
        );
        // A socket a user other than root owns has its `uid:` before the inode.
        assert_eq!(owners.get(&1900), Some(&set(&["systemd-resolve"])));
        assert_eq!(owners.len(), 4);
        assert_eq!(
            names(&owners, &[2201, 730_973]),
            "nginx,nginx: worker,python3"
        );
        assert_eq!(names(&owners, &[1241]), "");
        assert_eq!(names(&owners, &[]), "");
    }

    #[test]
    fn hostile_and_odd_lines_are_skipped_without_panicking() {
        let good =
            "tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:((\"sshd\",pid=1,fd=3)) ino:7 sk:1 <->";
        for bad in [
            // A name that ends the list early and forges another entry.
            "tcp LISTEN 0 1 0.0.0.0:1 0.0.0.0:* users:((\"x\",pid=1,fd=2))\",pid=9,fd=3)) ino:8 sk:1",
            // A quote inside the name, and a name longer than the kernel keeps.
            "tcp LISTEN 0 1 0.0.0.0:1 0.0.0.0:* users:((\"a\"b\",pid=1,fd=2)) ino:8",
            "tcp LISTEN 0 1 0.0.0.0:1 0.0.0.0:* users:((\"sixteen-bytes-xx\",pid=1,fd=2)) ino:8",
            // Control characters, an empty name, missing or non-numeric fields.
            "tcp LISTEN 0 1 0.0.0.0:1 0.0.0.0:* users:((\"a\u{1b}[2J\",pid=1,fd=2)) ino:8",
            "tcp LISTEN 0 1 0.0.0.0:1 0.0.0.0:* users:((\"\",pid=1,fd=2)) ino:8",
            "tcp LISTEN 0 1 0.0.0.0:1 0.0.0.0:* users:((\"a\",pid=,fd=2)) ino:8",
            "tcp LISTEN 0 1 0.0.0.0:1 0.0.0.0:* users:((\"a\",pid=1)) ino:8",
            "tcp LISTEN 0 1 0.0.0.0:1 0.0.0.0:* users:((\"a\",pid=1,fd=2)) ino:-8",
            "tcp LISTEN 0 1 0.0.0.0:1 0.0.0.0:* users:((\"a\",pid=1,fd=2)) ino:99999999999999999999999",
            "tcp LISTEN 0 1 0.0.0.0:1 0.0.0.0:* users:((\"a\",pid=1,fd=2)) ino:",
            "tcp LISTEN 0 1 0.0.0.0:1 0.0.0.0:* users:((\"a\",pid=1,fd=2))ino:8",
            "tcp LISTEN 0 1 0.0.0.0:1 0.0.0.0:* users:((\"a\",pid=1,fd=2)) sk:1 ino:8",
            "tcp LISTEN 0 1 0.0.0.0:1 0.0.0.0:* users:((\"a\",pid=1,fd=2)) uid:x ino:8",
            "tcp LISTEN 0 1 0.0.0.0:1 0.0.0.0:* users:((\"a\",pid=1,fd=2)) uid:1 uid:1 ino:8",
            "tcp LISTEN 0 1 0.0.0.0:1 0.0.0.0:* users:((\"a\",pid=1,fd=2)) uid:1",
            "tcp LISTEN 0 1 0.0.0.0:1 0.0.0.0:* users:((\"a\",pid=1,fd=2),(\"b\",pid=2,fd=3) ino:8",
            "tcp LISTEN 0 1 0.0.0.0:1 0.0.0.0:* users:((\"a\",pid=1,fd=2)",
            "tcp LISTEN 0 1 0.0.0.0:1 0.0.0.0:* users:((",
            "users:((\"a\",pid=1,fd=2)) ino:8",
            "",
            " ",
            "\u{0}\u{ffff}",
        ] {
            let owners = parse(&format!("{good}\n{bad}\n{good}\n"));
            assert_eq!(owners.len(), 1, "{bad:?} gave {owners:?}");
            assert_eq!(owners.get(&7), Some(&set(&["sshd"])), "{bad:?}");
        }
    }

    #[test]
    fn a_line_cut_at_the_output_cap_is_not_read() {
        let full =
            "tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:((\"sshd\",pid=1,fd=3)) ino:7123 sk:1\n";
        let cut = &full[..full.find("ino:7123").expect("inode") + "ino:71".len()];
        assert!(parse(cut).is_empty(), "the cut inode 71 must not be taken");
        assert_eq!(
            parse(&format!("{full}{cut}"))
                .keys()
                .copied()
                .collect::<Vec<_>>(),
            [7123]
        );
        assert!(parse("").is_empty());
    }

    #[test]
    fn any_bytes_parse_without_panicking() {
        // A small deterministic fuzz: every prefix and a byte-rotated copy of real output.
        let out = "tcp LISTEN 0 511 0.0.0.0:80 0.0.0.0:* users:((\"nginx\",pid=812,fd=6),(\"nginx\",pid=811,fd=6)) ino:2201 sk:3 <->\n";
        for end in 0..=out.len() {
            if let Some(prefix) = out.get(..end) {
                let _ = parse(prefix);
            }
        }
        let bytes: Vec<u8> = out.bytes().map(|b| b.rotate_left(3)).collect();
        let _ = parse(&String::from_utf8_lossy(&bytes));
    }
}
