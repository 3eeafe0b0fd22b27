//! Drift: how an inventory differs from a baseline, and the baseline that accepting (some of)
//! that difference makes. Pure: no clock, no database.
//!
//! Spec:
//! - Categories and items are compared as [`Snapshot`]s (the stable fields only, see
//!   [`super::snapshot`]). An item is *added* when it is in the current inventory and not in the
//!   baseline, *removed* when it is in the baseline and not the inventory, *changed* when both
//!   have it with different values (a package's version, a port's process).
//! - Every category either side has is compared: a category the inventory stopped reporting
//!   shows as all its items removed (the evidence is gone; that is for a person to accept).
//! - Changes come sorted by category (in [`Category::ALL`] order), then by item key.
//! - No changes is no drift. There is no tolerance: a baseline is exact (CM-2).
//! - [`accept`] applies the changes a [`Selector`] matches (all of them when none is given) to
//!   the baseline and leaves the rest as drift; accepting everything gives the inventory itself.

use super::snapshot::{Category, Snapshot};
use serde::Serialize;
use std::collections::BTreeSet;

/// What happened to one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Changed => "changed",
        }
    }
}

/// One item that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub category: Category,
    pub item: String,
    pub change: ChangeKind,
    /// Its value in the baseline (`None` when added).
    pub baseline: Option<String>,
    /// Its value now (`None` when removed).
    pub current: Option<String>,
}

/// Every difference between a baseline and an inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub changes: Vec<Change>,
}

/// Counts of one category's changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
}

/// Which changes to accept: a whole category, or one item of it (`package:openssl:amd64` is
/// the item `openssl:amd64` of `package`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub category: Category,
    pub item: Option<String>,
}

impl std::str::FromStr for Selector {
    type Err = String;

    fn from_str(text: &str) -> Result<Selector, String> {
        let (category, item) = match text.split_once(':') {
            Some((c, i)) if !i.is_empty() => (c, Some(i.to_string())),
            Some(_) => return Err(format!("`{text}`: an item after `:` is missing")),
            None => (text, None),
        };
        Ok(Selector {
            category: category.parse()?,
            item,
        })
    }
}

impl Selector {
    pub fn matches(&self, change: &Change) -> bool {
        self.category == change.category && self.item.as_ref().is_none_or(|i| *i == change.item)
    }
}

/// How `current` differs from `baseline`.
pub fn drift(baseline: &Snapshot, current: &Snapshot) -> Drift {
    let mut changes = Vec::new();
    for category in Category::ALL {
        let (was, now) = (baseline.0.get(&category), current.0.get(&category));
        let keys: BTreeSet<&String> = was.into_iter().chain(now).flat_map(|m| m.keys()).collect();
        for key in keys {
            let before = was.and_then(|m| m.get(key));
            let after = now.and_then(|m| m.get(key));
            let change = match (before, after) {
                (None, Some(_)) => ChangeKind::Added,
                (Some(_), None) => ChangeKind::Removed,
                (Some(b), Some(a)) if b != a => ChangeKind::Changed,
                _ => continue,
            };
            changes.push(Change {
                category,
                item: key.clone(),
                change,
                baseline: before.cloned(),
                current: after.cloned(),
            });
        }
    }
    Drift { changes }
}

/// `baseline` with the changes of `drift` that `selectors` match (all when empty) applied.
pub fn accept(baseline: &Snapshot, drift: &Drift, selectors: &[Selector]) -> Snapshot {
    let mut next = baseline.clone();
    for c in drift.changes.iter().filter(|c| selected(selectors, c)) {
        let items = next.0.entry(c.category).or_default();
        match &c.current {
            Some(value) => {
                items.insert(c.item.clone(), value.clone());
            }
            None => {
                items.remove(&c.item);
            }
        }
    }
    next.0.retain(|_, items| !items.is_empty());
    next
}

/// Whether `selectors` (all when empty) take `change`.
pub fn selected(selectors: &[Selector], change: &Change) -> bool {
    selectors.is_empty() || selectors.iter().any(|s| s.matches(change))
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Counts per category, for categories with changes, in [`Category::ALL`] order.
    pub fn counts(&self) -> Vec<(Category, Counts)> {
        let mut out: Vec<(Category, Counts)> = Vec::new();
        for c in &self.changes {
            if out.last().is_none_or(|(cat, _)| *cat != c.category) {
                out.push((c.category, Counts::default()));
            }
            if let Some((_, n)) = out.last_mut() {
                match c.change {
                    ChangeKind::Added => n.added += 1,
                    ChangeKind::Removed => n.removed += 1,
                    ChangeKind::Changed => n.changed += 1,
                }
            }
        }
        out
    }

    /// The counts per category as text: `package +1 ~1, user -1`.
    pub fn counts_text(&self) -> String {
        self.counts()
            .iter()
            .map(|(cat, n)| {
                let parts: Vec<String> = [("+", n.added), ("-", n.removed), ("~", n.changed)]
                    .iter()
                    .filter(|(_, k)| *k > 0)
                    .map(|(s, k)| format!("{s}{k}"))
                    .collect();
                format!("{cat} {}", parts.join(" "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// One line for an alert: the counts per category and the first `shown` changes, e.g.
    /// `2 changes since baseline 3 (package +1 ~1): added package nmap 7.93; ...`.
    pub fn summary(&self, version: i64, shown: usize) -> String {
        if self.is_empty() {
            return format!("no drift from baseline {version}");
        }
        let first: Vec<String> = self
            .changes
            .iter()
            .take(shown)
            .map(|c| {
                // A value may be empty (a port whose owner cannot be seen): say so, or the
                // line would read `tcp/0.0.0.0:22  -> sshd`.
                let shown = |v: &str| {
                    if v.is_empty() {
                        "(empty)".to_string()
                    } else {
                        v.to_string()
                    }
                };
                let value = match (&c.baseline, &c.current) {
                    (Some(b), Some(a)) => format!(" {} -> {}", shown(b), shown(a)),
                    (None, Some(v)) | (Some(v), None) if !v.is_empty() => format!(" {v}"),
                    _ => String::new(),
                };
                format!("{} {} {}{value}", c.change.as_str(), c.category, c.item)
            })
            .collect();
        let more = self.changes.len().saturating_sub(shown);
        let tail = if more > 0 {
            format!("; {more} more")
        } else {
            String::new()
        };
        let n = self.changes.len();
        format!(
            "{n} change{} since baseline {version} ({}): {}{tail}",
            if n == 1 { "" } else { "s" },
            self.counts_text(),
            first.join("; ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn snap(items: &[(Category, &str, &str)]) -> Snapshot {
        let mut s = Snapshot(BTreeMap::new());
        for (c, k, v) in items {
            s.0.entry(*c)
                .or_default()
                .insert(k.to_string(), v.to_string());
        }
        s
    }

    use Category::{Kernel, ListeningPort, Package, User};

    fn base() -> Snapshot {
        snap(&[
            (Package, "bash", "5.2"),
            (Package, "openssl", "3.0.11"),
            (Kernel, "kernel", "6.1.0-17"),
            (User, "ada", "uid=1000"),
        ])
    }

    fn now() -> Snapshot {
        snap(&[
            (Package, "bash", "5.2"),
            (Package, "nmap", "7.93"),
            (Package, "openssl", "3.0.13"),
            (Kernel, "kernel", "6.1.0-17"),
            (ListeningPort, "tcp/0.0.0.0:4444", "nc"),
        ])
    }

    #[test]
    fn the_same_inventory_is_no_drift() {
        let d = drift(&base(), &base());
        assert!(d.is_empty());
        assert_eq!(d.summary(3, 5), "no drift from baseline 3");
    }

    #[test]
    fn added_removed_and_changed_items_are_found_in_category_then_item_order() {
        let d = drift(&base(), &now());
        let seen: Vec<(Category, &str, ChangeKind)> = d
            .changes
            .iter()
            .map(|c| (c.category, c.item.as_str(), c.change))
            .collect();
        assert_eq!(
            seen,
            [
                (Package, "nmap", ChangeKind::Added),
                (Package, "openssl", ChangeKind::Changed),
                (ListeningPort, "tcp/0.0.0.0:4444", ChangeKind::Added),
                (User, "ada", ChangeKind::Removed),
            ]
        );
        let openssl = &d.changes[1];
        assert_eq!(
            (openssl.baseline.as_deref(), openssl.current.as_deref()),
            (Some("3.0.11"), Some("3.0.13"))
        );
        assert_eq!(
            d.counts(),
            [
                (
                    Package,
                    Counts {
                        added: 1,
                        removed: 0,
                        changed: 1
                    }
                ),
                (
                    ListeningPort,
                    Counts {
                        added: 1,
                        removed: 0,
                        changed: 0
                    }
                ),
                (
                    User,
                    Counts {
                        added: 0,
                        removed: 1,
                        changed: 0
                    }
                ),
            ]
        );
    }

    #[test]
    fn a_port_whose_owning_process_changed_is_changed_drift() {
        let before = snap(&[
            (ListeningPort, "tcp6/[::]:22", "sshd"),
            (ListeningPort, "tcp/0.0.0.0:80", ""),
        ]);
        let after = snap(&[
            (ListeningPort, "tcp6/[::]:22", "dropbear"),
            (ListeningPort, "tcp/0.0.0.0:80", "nginx"),
        ]);
        let d = drift(&before, &after);
        let seen: Vec<(&str, ChangeKind, Option<&str>, Option<&str>)> = d
            .changes
            .iter()
            .map(|c| {
                (
                    c.item.as_str(),
                    c.change,
                    c.baseline.as_deref(),
                    c.current.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "tcp/0.0.0.0:80",
                    ChangeKind::Changed,
                    Some(""),
                    Some("nginx")
                ),
                (
                    "tcp6/[::]:22",
                    ChangeKind::Changed,
                    Some("sshd"),
                    Some("dropbear")
                ),
            ]
        );
        assert_eq!(
            d.summary(1, 5),
            "2 changes since baseline 1 (listening-port ~2): \
             changed listening-port tcp/0.0.0.0:80 (empty) -> nginx; \
             changed listening-port tcp6/[::]:22 sshd -> dropbear"
        );
        assert!(drift(&after, &after).is_empty());
    }

    #[test]
    fn the_summary_counts_per_category_and_names_the_first_changes() {
        let summary = drift(&base(), &now()).summary(2, 2);
        assert_eq!(
            summary,
            "4 changes since baseline 2 (package +1 ~1, listening-port +1, user -1): \
             added package nmap 7.93; changed package openssl 3.0.11 -> 3.0.13; 2 more"
        );
    }

    #[test]
    fn accepting_everything_gives_the_inventory_and_then_no_drift() {
        let d = drift(&base(), &now());
        let next = accept(&base(), &d, &[]);
        assert_eq!(next, now());
        assert!(drift(&next, &now()).is_empty());
    }

    #[test]
    fn accepting_a_category_or_an_item_leaves_the_rest_as_drift() {
        let d = drift(&base(), &now());
        let only: Selector = "package:nmap".parse().expect("selector");
        let next = accept(&base(), &d, &[only]);
        let left: Vec<String> = drift(&next, &now())
            .changes
            .into_iter()
            .map(|c| c.item)
            .collect();
        assert_eq!(left, ["openssl", "tcp/0.0.0.0:4444", "ada"]);

        let users: Selector = "user".parse().expect("selector");
        let next = accept(&base(), &d, &[users]);
        assert!(
            !next.0.contains_key(&User),
            "an emptied category is dropped"
        );
        assert_eq!(drift(&next, &now()).changes.len(), 3);
    }

    #[test]
    fn selectors_name_a_known_category_and_a_nonempty_item() {
        let s: Selector = "package:libssl3:amd64".parse().expect("selector");
        assert_eq!(
            (s.category, s.item.as_deref()),
            (Package, Some("libssl3:amd64"))
        );
        assert!("package:".parse::<Selector>().is_err());
        assert!("pkgs".parse::<Selector>().is_err());
    }
}
