//! Parser for the local account database (`/etc/passwd`): one `name:password:uid:gid:gecos:
//! home:shell` line per account. Only the name, uid and shell go into the inventory: what a
//! baseline watches (a new account, a changed uid or login shell); the rest changes for reasons
//! nobody audits (the comment field) or says nothing (the password is `x`).

/// One local account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub shell: String,
}

/// Accounts in file order. Comments, blank lines, NIS `+`/`-` entries and lines that are not
/// seven fields with a numeric uid are skipped rather than failing the inventory.
pub fn accounts(passwd: &str) -> Vec<Account> {
    passwd
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(['#', '+', '-']))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let [name, _, uid, _, _, _, shell] = fields[..] else {
                return None;
            };
            Some(Account {
                name: name.to_string(),
                uid: uid.parse().ok()?,
                shell: shell.to_string(),
            })
            .filter(|a| !a.name.is_empty())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_read_and_odd_lines_skipped() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n# comment\n\n+nis::::::\n\
                      ada:x:1000:1000:Ada L,,,:/home/ada:/bin/zsh\nbroken:x:notanumber:0::/:/bin/sh\n\
                      short:x:1\n";
        assert_eq!(
            accounts(passwd),
            [
                Account {
                    name: "root".into(),
                    uid: 0,
                    shell: "/bin/bash".into()
                },
                Account {
                    name: "ada".into(),
                    uid: 1000,
                    shell: "/bin/zsh".into()
                },
            ]
        );
    }
}
