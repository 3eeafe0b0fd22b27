//! The effective grant of a plugin: what its manifest requests intersected with what the site
//! policy allows. Every capability call is checked here, through [`Grant::authorize`], whose
//! exhaustive `match` over [`Operation`] means an unmapped operation cannot compile.

use crate::capability::Capability;
use crate::egress::{Cidr, HttpOrigin};
use crate::limits::RunLimits;
use crate::manifest::{Manifest, Role, SysinfoCategory};
use crate::policy::SitePolicy;
use serde::Serialize;
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// A program the plugin may run: its argv must satisfy both the manifest's and the policy's patterns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecGrant {
    pub program: String,
    pub manifest_args: Vec<String>,
    pub policy_args: Vec<String>,
}

/// What one plugin may do on this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub plugin: String,
    pub role: Role,
    pub exec: Vec<ExecGrant>,
    pub fs_read: Vec<PathBuf>,
    pub fs_write: Vec<PathBuf>,
    pub sysinfo: BTreeSet<SysinfoCategory>,
    pub kv_quota_bytes: Option<u64>,
    /// Origins granted for outbound HTTP (requested and allowed, exactly).
    pub http: Vec<HttpOrigin>,
    /// The policy's non-public ranges an origin's name may resolve to.
    pub http_networks: Vec<Cidr>,
    pub services: Vec<String>,
    pub service_control: bool,
    pub limits: RunLimits,
}

/// A request the policy refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// What was refused, as the manifest names it: a capability (`fs.read`) or a limit
    /// (`limits.memory-mb`).
    pub capability: String,
    /// The capability, when a capability was refused.
    #[serde(skip)]
    pub of: Option<Capability>,
    pub requested: String,
    pub reason: String,
}

/// What a refusal is about.
#[derive(Debug, Clone, Copy)]
enum Subject {
    Capability(Capability),
    Limit(&'static str),
}

impl Subject {
    fn name(self) -> &'static str {
        match self {
            Subject::Capability(c) => c.request_name(),
            Subject::Limit(key) => key,
        }
    }

    fn capability(self) -> Option<Capability> {
        match self {
            Subject::Capability(c) => Some(c),
            Subject::Limit(_) => None,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} `{}` ({})",
            self.capability, self.requested, self.reason
        )
    }
}

/// Requested versus granted, for `warden plugin inspect` and for refusing a run.
#[derive(Debug, Clone, Serialize)]
pub struct GrantReport {
    pub grant: Grant,
    /// Requests the policy refuses so completely that the plugin cannot run: a capability of which
    /// nothing is granted, or a limit above the site maximum.
    pub refusals: Vec<Refusal>,
    /// Requested items left out of an otherwise granted capability; calls to them are denied.
    pub narrowed: Vec<Refusal>,
}

/// One capability operation, as the chokepoint sees it.
#[derive(Debug, Clone, Copy)]
pub enum Operation<'a> {
    Exec {
        program: &'a str,
        args: &'a [String],
    },
    FsRead {
        path: &'a Path,
    },
    FsWrite {
        path: &'a Path,
    },
    Sysinfo {
        category: SysinfoCategory,
    },
    Kv {
        key: &'a str,
    },
    /// A request to `origin`; the addresses its name resolves to are checked after, with
    /// [`Grant::dialable`].
    Http {
        origin: &'a HttpOrigin,
    },
    ServiceStatus {
        name: &'a str,
    },
    ServiceControl {
        name: &'a str,
        action: &'a str,
    },
}

impl Operation<'_> {
    /// The capability it uses.
    pub fn capability(&self) -> Capability {
        match self {
            Operation::Exec { .. } => Capability::Exec,
            Operation::FsRead { .. } => Capability::FsRead,
            Operation::FsWrite { .. } => Capability::FsWrite,
            Operation::Sysinfo { .. } => Capability::Sysinfo,
            Operation::Kv { .. } => Capability::Kv,
            Operation::Http { .. } => Capability::Http,
            Operation::ServiceStatus { .. } => Capability::Service,
            Operation::ServiceControl { .. } => Capability::ServiceControl,
        }
    }

    /// Whether the operation changes the machine, and so belongs to `apply` alone: `check`,
    /// `plan` and every dry run must leave the machine as they found it. `exec` is not among
    /// them: checks run programs to look, and what a granted program does is the grant's business.
    pub fn changes_machine(&self) -> bool {
        self.capability().changes_machine()
    }
}

impl Grant {
    /// Resolve the grant of `manifest` under `policy`.
    pub fn resolve(manifest: &Manifest, policy: &SitePolicy) -> GrantReport {
        let mut refusals = Vec::new();
        let mut refuse = |subject: Subject, requested: String, reason: &str| {
            refusals.push(Refusal {
                capability: subject.name().into(),
                of: subject.capability(),
                requested,
                reason: reason.into(),
            })
        };
        let caps = &manifest.capabilities;
        let allow = &policy.allow;

        let mut exec = Vec::new();
        let mut optional_refused = Vec::new();
        // Several entries for one program are separate argv shapes (`apt-get -s dist-upgrade`
        // and `apt-get install pkg=version`): a call must fit one manifest entry and one policy
        // entry as a whole, so two shapes never mix into a third.
        for rule in &caps.exec {
            let mut allowed = allow
                .exec
                .iter()
                .filter(|p| p.program == rule.program)
                .peekable();
            if allowed.peek().is_none() {
                if rule.optional {
                    // The plugin runs without it: its calls are denied, the grant narrowed.
                    optional_refused.push(Refusal {
                        capability: Capability::Exec.request_name().into(),
                        of: Some(Capability::Exec),
                        requested: rule.program.clone(),
                        reason: "optional program not allowed by the site policy".into(),
                    });
                } else {
                    refuse(
                        Subject::Capability(Capability::Exec),
                        rule.program.clone(),
                        "program not allowed by the site policy",
                    );
                }
            }
            for p in allowed {
                exec.push(ExecGrant {
                    program: rule.program.clone(),
                    manifest_args: rule.args.clone(),
                    policy_args: p.args.clone(),
                });
            }
        }
        let fs_read = intersect_paths(
            &caps.fs.read,
            &allow.fs_read,
            Subject::Capability(Capability::FsRead),
            &mut refuse,
        );
        let fs_write = intersect_paths(
            &caps.fs.write,
            &allow.fs_write,
            Subject::Capability(Capability::FsWrite),
            &mut refuse,
        );
        let mut sysinfo = BTreeSet::new();
        for c in &caps.sysinfo {
            if allow.sysinfo.contains(c) {
                sysinfo.insert(*c);
            } else {
                refuse(
                    Subject::Capability(Capability::Sysinfo),
                    c.as_str().into(),
                    "category not allowed by the site policy",
                );
            }
        }
        let kv_quota_bytes = match &caps.kv {
            None => None,
            Some(_) if !allow.kv => {
                refuse(
                    Subject::Capability(Capability::Kv),
                    "state".into(),
                    "kv is not allowed by the site policy",
                );
                None
            }
            Some(kv) if kv.quota_bytes > policy.limits.max_kv_quota_bytes => {
                refuse(
                    Subject::Capability(Capability::Kv),
                    format!("{} bytes", kv.quota_bytes),
                    &format!(
                        "quota above the site maximum of {} bytes",
                        policy.limits.max_kv_quota_bytes
                    ),
                );
                None
            }
            Some(kv) => Some(kv.quota_bytes),
        };
        let mut http = Vec::new();
        for origin in &caps.http {
            if allow.http.contains(origin) {
                http.push(origin.clone());
            } else {
                refuse(
                    Subject::Capability(Capability::Http),
                    origin.to_string(),
                    "origin (scheme, host and port) not allowed by the site policy",
                );
            }
        }
        http.sort();
        http.dedup();
        let mut services = Vec::new();
        for s in &caps.services {
            if allow.services.contains(s) {
                services.push(s.clone());
            } else {
                refuse(
                    Subject::Capability(Capability::Service),
                    s.clone(),
                    "service not allowed by the site policy",
                );
            }
        }
        let service_control =
            manifest.role.may_change_machine() && !services.is_empty() && allow.service_control;
        if manifest.role.may_change_machine() && !caps.services.is_empty() && !allow.service_control
        {
            refuse(
                Subject::Capability(Capability::ServiceControl),
                caps.services.join(","),
                "the site policy does not allow service control",
            );
        }

        let l = &policy.limits;
        let memory_mb = manifest.limits.memory_mb.unwrap_or(l.default_memory_mb);
        if memory_mb > l.max_memory_mb {
            refuse(
                Subject::Limit("limits.memory-mb"),
                memory_mb.to_string(),
                &format!("above the site maximum of {} MB", l.max_memory_mb),
            );
        }
        let timeout_ms = manifest.limits.timeout_ms.unwrap_or(l.default_timeout_ms);
        if timeout_ms > l.max_timeout_ms {
            refuse(
                Subject::Limit("limits.timeout-ms"),
                timeout_ms.to_string(),
                &format!("above the site maximum of {} ms", l.max_timeout_ms),
            );
        }
        let limits = RunLimits {
            memory_bytes: memory_mb.min(l.max_memory_mb) << 20,
            timeout: Duration::from_millis(timeout_ms.min(l.max_timeout_ms)),
            log_bytes: l.log_bytes,
            exec_output_bytes: l.exec_output_bytes,
            exec_timeout: Duration::from_millis(l.exec_timeout_ms),
            fs_file_bytes: l.fs_file_bytes,
            fs_list_entries: l.fs_list_entries,
            http_response_bytes: l.http_response_bytes,
            http_timeout: Duration::from_millis(l.http_timeout_ms),
        };
        let grant = Grant {
            plugin: manifest.name.clone(),
            role: manifest.role,
            exec,
            fs_read,
            fs_write,
            sysinfo,
            kv_quota_bytes,
            http_networks: if http.is_empty() {
                Vec::new()
            } else {
                allow.http_networks.clone()
            },
            http,
            services,
            service_control,
            limits,
        };
        // A capability of which something is granted still works; the rest of its request is
        // only narrowed. Service control is never required: without it a remediation can still
        // check and plan.
        let (mut narrowed, refusals): (Vec<Refusal>, Vec<Refusal>) =
            refusals.into_iter().partition(|r| match r.of {
                Some(Capability::ServiceControl) => true,
                Some(c) => grant.has_some(c),
                None => false,
            });
        narrowed.extend(optional_refused);
        GrantReport {
            grant,
            refusals,
            narrowed,
        }
    }

    /// Whether anything of a capability (as named in refusals) is granted.
    fn has_some(&self, capability: Capability) -> bool {
        match capability {
            Capability::Exec => !self.exec.is_empty(),
            Capability::FsRead => !self.fs_read.is_empty(),
            Capability::FsWrite => !self.fs_write.is_empty(),
            Capability::Sysinfo => !self.sysinfo.is_empty(),
            Capability::Http => !self.http.is_empty(),
            Capability::Service => !self.services.is_empty(),
            // One quota: refused whole, never narrowed.
            Capability::Kv => false,
            Capability::ServiceControl => self.service_control,
        }
    }

    /// The single permission check. `Err` carries the reason, for the plugin and the audit record.
    pub fn authorize(&self, op: &Operation<'_>) -> Result<(), String> {
        match op {
            Operation::Exec { program, args } => {
                let mut refused = None;
                for rule in self.exec.iter().filter(|g| g.program == *program) {
                    let first_bad = args.iter().find(|arg| {
                        !matches_any(&rule.manifest_args, arg)
                            || !matches_any(&rule.policy_args, arg)
                    });
                    match first_bad {
                        None => return Ok(()),
                        // The first entry's refusal names the argument, as with one entry.
                        Some(arg) => {
                            refused.get_or_insert(arg);
                        }
                    }
                }
                Err(match refused {
                    None => format!("program `{program}` is not granted"),
                    Some(arg) => format!(
                        "argument `{}` of `{program}` is not granted",
                        arg.escape_debug()
                    ),
                })
            }
            Operation::FsRead { path } => {
                // Writable paths are readable too: a remediation must see what it changes.
                let roots = self.fs_read.iter().chain(&self.fs_write);
                under_any(roots, path)
                    .ok_or_else(|| format!("`{}` is not under a granted path", path.display()))
            }
            Operation::FsWrite { path } => under_any(self.fs_write.iter(), path).ok_or_else(|| {
                format!(
                    "`{}` is not under a path granted for writing",
                    path.display()
                )
            }),
            Operation::Sysinfo { category } => {
                if self.sysinfo.contains(category) {
                    Ok(())
                } else {
                    Err(format!("sysinfo `{}` is not granted", category.as_str()))
                }
            }
            Operation::Kv { .. } => self
                .kv_quota_bytes
                .map(|_| ())
                .ok_or_else(|| "kv is not granted".to_string()),
            Operation::Http { origin } => {
                if self.http.contains(origin) {
                    Ok(())
                } else {
                    Err(format!(
                        "origin `{origin}` is not granted (scheme, host and port must match)"
                    ))
                }
            }
            Operation::ServiceStatus { name } => {
                if self.services.iter().any(|s| s == name) {
                    Ok(())
                } else {
                    Err(format!("service `{name}` is not granted"))
                }
            }
            Operation::ServiceControl { name, action } => {
                if self.service_control && self.services.iter().any(|s| s == name) {
                    Ok(())
                } else {
                    Err(format!("{action} of service `{name}` is not granted"))
                }
            }
        }
    }

    /// The addresses of `addresses` (what a granted origin's name resolved to) that may be
    /// dialled, in order, each as [`canonical`](crate::egress::canonical) makes it; `Err` when none may, naming each address and why.
    pub fn dialable(
        &self,
        host: &str,
        addresses: &[std::net::IpAddr],
    ) -> Result<Vec<std::net::IpAddr>, String> {
        let mut ok = Vec::new();
        let mut why = Vec::new();
        for ip in addresses {
            match crate::egress::check_address(*ip, &self.http_networks) {
                // Dialled as what it stands for: `::ffff:10.0.0.5` is 10.0.0.5.
                Ok(()) => ok.push(crate::egress::canonical(*ip)),
                Err(reason) => why.push(reason),
            }
        }
        if ok.is_empty() {
            return Err(if why.is_empty() {
                format!("`{host}` resolved to no address")
            } else {
                format!(
                    "`{host}` resolves only to addresses that may not be dialled: {}",
                    why.join("; ")
                )
            });
        }
        Ok(ok)
    }

    /// Whether this grant lets the plugin import `capability`'s interface (`log`, `types` and
    /// WASI are always linked). The `fs` interface also serves a plugin granted writes only.
    pub fn grants(&self, capability: Capability) -> bool {
        match capability {
            Capability::Exec => !self.exec.is_empty(),
            Capability::FsRead => !self.fs_read.is_empty() || !self.fs_write.is_empty(),
            Capability::FsWrite => !self.fs_write.is_empty(),
            Capability::Sysinfo => !self.sysinfo.is_empty(),
            Capability::Kv => self.kv_quota_bytes.is_some(),
            Capability::Http => !self.http.is_empty(),
            Capability::Service => !self.services.is_empty(),
            Capability::ServiceControl => self.service_control,
        }
    }
}

/// Whether `arg` matches one of `patterns`. A pattern is a glob over the whole argument: `*`
/// matches any run of characters, `/` included (`/srv/data/*` admits `/srv/data/a/b`), `?` any
/// one character, `[...]` one of a set; anything else matches itself. A wildcard never supplies
/// a `..` path segment: an argument with one (`/srv/data/../etc/shadow`, `--in=a/../b`) matches
/// only a pattern without wildcards that is equal to it, since the program would climb out of
/// the directory the pattern names.
fn matches_any(patterns: &[String], arg: &str) -> bool {
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: false,
        require_literal_leading_dot: false,
    };
    let climbs = has_parent_segment(arg);
    patterns.iter().any(|p| {
        if climbs {
            return !has_wildcard(p) && p == arg;
        }
        glob::Pattern::new(p)
            .map(|pat| pat.matches_with(arg, options))
            .unwrap_or(false)
    })
}

/// Whether `arg` has a `..` segment between separators (`/`, or `\` for Windows programs) or at
/// either end, after an `=` of an option (`--path=../x`) too.
fn has_parent_segment(arg: &str) -> bool {
    arg.split(['/', '\\', '=']).any(|segment| segment == "..")
}

/// Whether a glob pattern has a wildcard (`*`, `?` or a `[` set) rather than only literal text.
fn has_wildcard(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

fn under_any<'a>(mut roots: impl Iterator<Item = &'a PathBuf>, path: &Path) -> Option<()> {
    let path = normalized(path)?;
    roots
        .any(|root| normalized(root).is_some_and(|r| is_within(&path, &r)))
        .then_some(())
}

/// [`normalize`] without the allocation when `path` is normal already (as every granted root is,
/// and every path a well-behaved plugin passes): this runs for the path and each granted root on
/// every `fs` call.
pub fn normalized(path: &Path) -> Option<Cow<'_, Path>> {
    if is_normal(path) {
        Some(Cow::Borrowed(path))
    } else {
        normalize(path).map(Cow::Owned)
    }
}

/// Whether `normalize(path)` would return `path` unchanged: absolute, no empty, `.` or `..`
/// segment, no trailing separator. Checked on the bytes, so only where `/` is the only separator.
fn is_normal(path: &Path) -> bool {
    if !cfg!(unix) {
        return false;
    }
    let bytes = path.as_os_str().as_encoded_bytes();
    match bytes {
        [b'/'] => true,
        [b'/', rest @ ..] => rest
            .split(|b| *b == b'/')
            .all(|seg| !matches!(seg, b"" | b"." | b"..")),
        _ => false,
    }
}

/// `path.starts_with(root)` for two paths that are normal (see [`normalized`]), compared as bytes
/// instead of component by component: equal, or `root` followed by a separator in `path`.
pub fn is_within(path: &Path, root: &Path) -> bool {
    if !cfg!(unix) {
        return path.starts_with(root);
    }
    let (p, r) = (
        path.as_os_str().as_encoded_bytes(),
        root.as_os_str().as_encoded_bytes(),
    );
    match p.strip_prefix(r) {
        Some(rest) => rest.is_empty() || rest[0] == b'/' || r == b"/",
        None => false,
    }
}

/// Lexical normalisation of an absolute path: drops `.` and trailing separators, applies `..`
/// (refusing to climb above the root). `None` for relative paths or paths climbing out.
pub fn normalize(path: &Path) -> Option<PathBuf> {
    if !path.is_absolute() {
        return None;
    }
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Prefix(_) | Component::RootDir => out.push(c.as_os_str()),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(part) => out.push(part),
        }
    }
    Some(out)
}

fn intersect_paths(
    requested: &[PathBuf],
    allowed: &[PathBuf],
    capability: Subject,
    refuse: &mut impl FnMut(Subject, String, &str),
) -> Vec<PathBuf> {
    let mut granted = Vec::new();
    for r in requested {
        let Some(r) = normalize(r) else {
            refuse(
                capability,
                r.display().to_string(),
                "not a normal absolute path",
            );
            continue;
        };
        let mut any = false;
        for a in allowed.iter().filter_map(|a| normalize(a)) {
            if r.starts_with(&a) {
                granted.push(r.clone());
                any = true;
            } else if a.starts_with(&r) {
                // The policy is narrower than the request: grant the policy's path.
                granted.push(a);
                any = true;
            }
        }
        if !any {
            refuse(
                capability,
                r.display().to_string(),
                "path not allowed by the site policy",
            );
        }
    }
    granted.sort();
    granted.dedup();
    granted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(caps: &str) -> Manifest {
        Manifest::parse(&format!(
            "name = \"t\"\nversion = \"1.0.0\"\nrole = \"remediation\"\n{caps}"
        ))
        .expect("test manifest")
    }

    fn policy(allow: &str) -> SitePolicy {
        SitePolicy::parse(&format!("[allow]\n{allow}"), "test").expect("test policy")
    }

    #[test]
    fn effective_grant_is_the_intersection() {
        let m = manifest(
            "[capabilities]\nsysinfo = [\"os\", \"processes\"]\n[capabilities.fs]\nwrite = [\"/tmp\"]",
        );
        let p = policy("sysinfo = [\"os\"]\nfs-write = [\"/tmp/scratch\"]");
        let report = Grant::resolve(&m, &p);
        assert_eq!(
            report.grant.sysinfo.iter().copied().collect::<Vec<_>>(),
            vec![SysinfoCategory::Os]
        );
        assert_eq!(report.grant.fs_write, vec![PathBuf::from("/tmp/scratch")]);
        assert!(
            report.refusals.is_empty(),
            "partly granted capabilities still run"
        );
        assert_eq!(report.narrowed.len(), 1);
        assert_eq!(report.narrowed[0].requested, "processes");
        let none = policy("sysinfo = [\"cpu\"]\nfs-write = [\"/tmp/scratch\"]");
        let report = Grant::resolve(&m, &none);
        assert_eq!(
            report.refusals.len(),
            2,
            "nothing of sysinfo is granted: {:?}",
            report.refusals
        );
    }

    #[test]
    fn an_optional_program_the_policy_does_not_allow_narrows_the_grant_and_its_calls_are_denied() {
        let m = manifest(
            "[capabilities]\nsysinfo = [\"os\"]\n\
             exec = [{ program = \"/usr/bin/ss\", args = [\"-Hltunpe\"], optional = true }]",
        );
        let report = Grant::resolve(&m, &policy("sysinfo = [\"os\"]"));
        assert!(report.refusals.is_empty(), "{:?}", report.refusals);
        assert_eq!(report.narrowed.len(), 1, "{:?}", report.narrowed);
        assert_eq!(report.narrowed[0].requested, "/usr/bin/ss");
        let args = ["-Hltunpe".to_string()];
        assert!(
            report
                .grant
                .authorize(&Operation::Exec {
                    program: "/usr/bin/ss",
                    args: &args,
                })
                .is_err(),
            "optional is not allowed: the call is still denied"
        );
        let allowed = policy(
            "sysinfo = [\"os\"]\nexec = [{ program = \"/usr/bin/ss\", args = [\"-Hltunpe\"] }]",
        );
        let g = Grant::resolve(&m, &allowed).grant;
        assert!(
            g.authorize(&Operation::Exec {
                program: "/usr/bin/ss",
                args: &args,
            })
            .is_ok()
        );
        // Without `optional` the same request refuses the run.
        let required = manifest(
            "[capabilities]\nsysinfo = [\"os\"]\n\
             exec = [{ program = \"/usr/bin/ss\", args = [\"-Hltunpe\"] }]",
        );
        let report = Grant::resolve(&required, &policy("sysinfo = [\"os\"]"));
        assert_eq!(report.refusals.len(), 1, "{:?}", report.refusals);
    }

    #[test]
    fn optional_is_a_manifest_key_and_a_policy_refuses_it() {
        let err = SitePolicy::parse(
            "[allow]\nexec = [{ program = \"/usr/bin/ss\", args = [], optional = true }]",
            "test",
        )
        .expect_err("optional in a policy");
        assert!(
            err.to_string().contains("belongs in a plugin manifest"),
            "{err}"
        );
    }

    #[test]
    fn entries_for_one_program_are_separate_argv_shapes() {
        let shapes = "exec = [\
            { program = \"/usr/bin/apt-get\", args = [\"-s\", \"dist-upgrade\"] },\
            { program = \"/usr/bin/apt-get\", args = [\"install\", \"-y\", \"[a-z0-9]*=[0-9]*\"] },\
        ]";
        let m = manifest(&format!("[capabilities]\n{shapes}"));
        let g = Grant::resolve(&m, &policy(shapes)).grant;
        let call = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            g.authorize(&Operation::Exec {
                program: "/usr/bin/apt-get",
                args: &args,
            })
        };
        assert!(call(&["-s", "dist-upgrade"]).is_ok());
        assert!(call(&["install", "-y", "libssl3=3.0.11-1"]).is_ok());
        // Mixing the two shapes would be a real dist-upgrade: neither entry admits it.
        assert_eq!(
            call(&["dist-upgrade", "-y"]),
            Err("argument `-y` of `/usr/bin/apt-get` is not granted".to_string())
        );
        assert!(call(&["install", "-y", "-oDpkg::Pre-Invoke::=x"]).is_err());
    }

    #[test]
    fn exec_arguments_must_match_manifest_and_policy() {
        let m = manifest(
            "[capabilities]\nexec = [{ program = \"/bin/echo\", args = [\"hello\", \"-n\"] }]",
        );
        let p = policy("exec = [{ program = \"/bin/echo\", args = [\"h*\"] }]");
        let g = Grant::resolve(&m, &p).grant;
        let ok = ["hello".to_string()];
        let not_in_policy = ["-n".to_string()];
        assert!(
            g.authorize(&Operation::Exec {
                program: "/bin/echo",
                args: &ok
            })
            .is_ok()
        );
        assert!(
            g.authorize(&Operation::Exec {
                program: "/bin/echo",
                args: &not_in_policy
            })
            .is_err()
        );
        assert!(
            g.authorize(&Operation::Exec {
                program: "/bin/sh",
                args: &ok
            })
            .is_err()
        );
    }

    #[test]
    fn exec_wildcards_never_supply_a_parent_segment() {
        let m = manifest(
            "[capabilities]\nexec = [{ program = \"/bin/cat\", args = [\"/srv/data/*\", \"--in=/srv/?ata/*\", \"*\", \"/srv/data/../lit\"] }]",
        );
        let p = policy("exec = [{ program = \"/bin/cat\", args = [\"*\"] }]");
        let g = Grant::resolve(&m, &p).grant;
        let allowed = |arg: &str| {
            g.authorize(&Operation::Exec {
                program: "/bin/cat",
                args: &[arg.to_string()],
            })
            .is_ok()
        };
        for ok in [
            "/srv/data/a",
            "/srv/data/a/b",
            "/srv/data/a..b",
            "/srv/data/...",
            "/srv/data/.hidden",
            "--in=/srv/data/x",
        ] {
            assert!(allowed(ok), "{ok:?} should match");
        }
        for climbing in [
            "/srv/data/../etc/shadow",
            "/srv/data/a/../../etc/shadow",
            "/srv/data/..",
            "/srv/data/..\\..\\x",
            "--in=/srv/data/../etc",
            "..",
            "../x",
            "--in=..",
        ] {
            assert!(!allowed(climbing), "{climbing:?} must not match a wildcard");
        }
        // A literal pattern (in manifest and policy) still admits exactly itself.
        let p = policy(
            "exec = [{ program = \"/bin/cat\", args = [\"/srv/data/../lit\", \"/srv/data/*\"] }]",
        );
        let g = Grant::resolve(&m, &p).grant;
        let op = |arg: &str| {
            g.authorize(&Operation::Exec {
                program: "/bin/cat",
                args: &[arg.to_string()],
            })
        };
        assert!(op("/srv/data/../lit").is_ok());
        assert!(op("/srv/data/../lit2").is_err());
        let reason = op("/srv/data/../etc/shadow").expect_err("refused");
        assert!(reason.contains("/srv/data/../etc/shadow"), "{reason}");
    }

    #[test]
    fn http_origins_match_on_scheme_host_and_port() {
        let m = manifest(
            "[capabilities]\nhttp = [\"https://psa.example.com\", \"http://psa.example.com:8080\", \"https://other.example\"]",
        );
        let p = policy(
            "http = [\"https://PSA.example.com:443\", \"http://psa.example.com:8081\"]\nhttp-networks = [\"10.0.0.0/8\"]",
        );
        let report = Grant::resolve(&m, &p);
        let g = &report.grant;
        assert_eq!(g.http.len(), 1, "{:?}", g.http);
        assert_eq!(
            report.narrowed.len(),
            2,
            "port 8080 and other.example are left out"
        );
        let origin = |s: &str| s.parse::<crate::egress::HttpOrigin>().expect("origin");
        assert!(
            g.authorize(&Operation::Http {
                origin: &origin("https://psa.example.com")
            })
            .is_ok()
        );
        for denied in [
            "http://psa.example.com",
            "https://psa.example.com:8443",
            "http://psa.example.com:8080",
        ] {
            let reason = g
                .authorize(&Operation::Http {
                    origin: &origin(denied),
                })
                .expect_err(denied);
            assert!(reason.contains("not granted"), "{reason}");
        }
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
        assert_eq!(
            g.dialable("psa.example.com", &[ip("127.0.0.1"), ip("10.1.1.1")]),
            Ok(vec![ip("10.1.1.1")])
        );
        let reason = g
            .dialable("psa.example.com", &[ip("127.0.0.1"), ip("169.254.169.254")])
            .expect_err("nothing dialable");
        assert!(
            reason.contains("loopback") && reason.contains("metadata"),
            "{reason}"
        );
        // Networks come with an http grant only.
        let bare = Grant::resolve(&manifest(""), &p).grant;
        assert!(bare.http_networks.is_empty());
    }

    #[test]
    fn lexical_escapes_are_refused() {
        let m = manifest("[capabilities.fs]\nwrite = [\"/tmp/scratch\"]");
        let p = policy("fs-write = [\"/tmp/scratch\"]");
        let g = Grant::resolve(&m, &p).grant;
        let op = |p: &'static str| Operation::FsWrite { path: Path::new(p) };
        assert!(g.authorize(&op("/tmp/scratch/a")).is_ok());
        assert!(g.authorize(&op("/tmp/scratch/")).is_ok());
        assert!(g.authorize(&op("/tmp/scratch/../x")).is_err());
        assert!(g.authorize(&op("/tmp/scratchy")).is_err());
        assert!(g.authorize(&op("relative")).is_err());
        assert!(
            g.authorize(&op("/../../tmp/scratch/../../etc/passwd"))
                .is_err()
        );
    }

    #[test]
    fn normalize_handles_dots_and_trailing_slashes() {
        assert_eq!(
            normalize(Path::new("/a/./b/../c/")),
            Some(PathBuf::from("/a/c"))
        );
        assert_eq!(normalize(Path::new("/..")), None);
        assert_eq!(normalize(Path::new("a/b")), None);
    }

    #[test]
    fn normalized_borrows_exactly_when_normalize_changes_nothing() {
        for p in [
            "/", "/a", "/a/b", "/a/b/", "/a//b", "/a/./b", "/a/../b", "/a/.", "/a/..", "/..", "//",
            "/.", "a", "", "./a", "/a/.b", "/a/..b", "/a/b.", "/...",
        ] {
            let path = Path::new(p);
            let fast = normalized(path);
            assert_eq!(
                fast.as_deref(),
                normalize(path).as_deref(),
                "normalized({p:?})"
            );
            let borrowed = matches!(fast, Some(Cow::Borrowed(_)));
            assert_eq!(
                borrowed,
                normalize(path).is_some_and(|n| n.as_os_str() == path.as_os_str()),
                "borrowed({p:?})"
            );
        }
    }

    #[test]
    fn is_within_matches_starts_with_on_normal_paths() {
        let paths = ["/", "/a", "/ab", "/a/b", "/a/bc", "/a/b/c", "/b"];
        for p in paths {
            for r in paths {
                assert_eq!(
                    is_within(Path::new(p), Path::new(r)),
                    Path::new(p).starts_with(r),
                    "is_within({p:?}, {r:?})"
                );
            }
        }
    }
}
