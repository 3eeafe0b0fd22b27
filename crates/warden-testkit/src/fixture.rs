//! The fixture file of one plugin test case (TOML, documented in docs/PLUGIN-AUTHORS.md): the
//! machine the plugin sees (files, programs, services, sysinfo facts, kv state), what to call,
//! and what must hold afterwards. Checked when loaded, so a mistake is reported before any plugin runs.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use warden_core::manifest::SysinfoCategory;
use warden_core::report::{ActionKind, CheckStatus, OutcomeStatus};
use warden_host::service_manager::ServiceState;
use warden_host::sysinfo_source::{
    CpuInfo, DiskInfo, MemoryInfo, NetworkInterface, OsInfo, ProcessInfo,
};

/// Largest fixture file accepted.
pub const MAX_FIXTURE_BYTES: u64 = 4 << 20;

/// One test case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Fixture {
    /// Shown in the results; default: the file name.
    #[serde(default)]
    pub name: Option<String>,
    /// What to call.
    pub run: RunKind,
    /// The plugin's configuration, validated against its `config-schema` as in production.
    #[serde(default = "empty_object")]
    pub config: serde_json::Value,
    /// The fake filesystem, by absolute path as the plugin sees it.
    #[serde(default)]
    pub files: BTreeMap<String, FileSpec>,
    /// Scripted results of `exec` calls; the first matching entry answers.
    #[serde(default)]
    pub exec: Vec<ScriptedExec>,
    /// The fake service manager: each service's state before the run.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceState>,
    /// The machine facts `sysinfo` reports; a category the case leaves out fails it when read.
    #[serde(default)]
    pub sysinfo: SysinfoFacts,
    /// The plugin's kv state before the run (UTF-8 values).
    #[serde(default)]
    pub kv: BTreeMap<String, String>,
    #[serde(default)]
    pub expect: Expect,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// The plugin export a case calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunKind {
    Discover,
    Check,
    Plan,
    /// `plan`, then `apply` of exactly that plan, as a runbook does.
    Apply,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Discover => "discover",
            RunKind::Check => "check",
            RunKind::Plan => "plan",
            RunKind::Apply => "apply",
        }
    }
}

/// A file or directory of the fake filesystem.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FileSpec {
    /// A file with this text.
    Text(String),
    Detailed(FileDetails),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileDetails {
    /// The file's text.
    #[serde(default)]
    pub text: Option<String>,
    /// A file of this many bytes (filler), when no text is given.
    #[serde(default)]
    pub size: Option<u64>,
    /// An (empty) directory rather than a file.
    #[serde(default)]
    pub dir: bool,
    /// Last modified this many seconds ago.
    #[serde(default)]
    pub age_secs: Option<u64>,
}

/// Largest filler file a fixture may ask for.
pub const MAX_FILLER_BYTES: u64 = 64 << 20;

/// The scripted answer to an `exec` call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ScriptedExec {
    pub program: String,
    /// Matched exactly; omitted: any arguments.
    #[serde(default)]
    pub args: Option<Vec<String>>,
    #[serde(default)]
    pub exit_code: i32,
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stderr: String,
}

/// The `[sysinfo]` section: what each category reports. A category not given here answers
/// `unsupported` and fails the case, naming it (as an unscripted program does): a case never
/// falls back on the facts of the machine it runs on. A category listed in `unsupported` answers
/// `unsupported` without failing the case, to test how a plugin copes with a host that lacks it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SysinfoFacts {
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub os: Option<OsInfo>,
    #[serde(default)]
    pub cpu: Option<CpuInfo>,
    #[serde(default)]
    pub memory: Option<MemoryInfo>,
    /// `disks = []` is a machine with no filesystem; leaving it out is a case that says nothing.
    #[serde(default)]
    pub disks: Option<Vec<DiskInfo>>,
    /// The network interfaces (category `network`).
    #[serde(default)]
    pub network: Option<Vec<NetworkInterface>>,
    /// Seconds since boot (category `uptime`).
    #[serde(default)]
    pub uptime_secs: Option<u64>,
    #[serde(default)]
    pub processes: Option<Vec<ProcessInfo>>,
    /// Categories this machine does not provide.
    #[serde(default)]
    pub unsupported: Vec<SysinfoCategory>,
}

impl SysinfoFacts {
    /// Whether the case gives `category`'s facts.
    pub fn gives(&self, category: SysinfoCategory) -> bool {
        match category {
            SysinfoCategory::Hostname => self.hostname.is_some(),
            SysinfoCategory::Os => self.os.is_some(),
            SysinfoCategory::Cpu => self.cpu.is_some(),
            SysinfoCategory::Memory => self.memory.is_some(),
            SysinfoCategory::Disks => self.disks.is_some(),
            SysinfoCategory::Network => self.network.is_some(),
            SysinfoCategory::Uptime => self.uptime_secs.is_some(),
            SysinfoCategory::Processes => self.processes.is_some(),
        }
    }

    /// The fixture key that gives `category`, as the plugin's `unsupported` message names it.
    pub fn key(category: SysinfoCategory) -> &'static str {
        match category {
            SysinfoCategory::Hostname => "sysinfo.hostname",
            SysinfoCategory::Os => "sysinfo.os",
            SysinfoCategory::Cpu => "sysinfo.cpu",
            SysinfoCategory::Memory => "sysinfo.memory",
            SysinfoCategory::Disks => "sysinfo.disks",
            SysinfoCategory::Network => "sysinfo.network",
            SysinfoCategory::Uptime => "sysinfo.uptime-secs",
            SysinfoCategory::Processes => "sysinfo.processes",
        }
    }

    /// How a fixture gives `category`, for the message that asks for it.
    pub fn how_to_give(category: SysinfoCategory) -> &'static str {
        match category {
            SysinfoCategory::Hostname => "`hostname = \"...\"` under [sysinfo]",
            SysinfoCategory::Os => "a [sysinfo.os] table",
            SysinfoCategory::Cpu => "a [sysinfo.cpu] table",
            SysinfoCategory::Memory => "a [sysinfo.memory] table",
            SysinfoCategory::Disks => "[[sysinfo.disks]] entries (or `disks = []`)",
            SysinfoCategory::Network => "[[sysinfo.network]] entries (or `network = []`)",
            SysinfoCategory::Uptime => "`uptime-secs = ...` under [sysinfo]",
            SysinfoCategory::Processes => "[[sysinfo.processes]] entries (or `processes = []`)",
        }
    }

    /// Facts no machine reports: more available than there is, two disks on one mount point.
    fn validate(&self) -> Result<(), String> {
        for category in &self.unsupported {
            if self.gives(*category) {
                return Err(format!(
                    "sysinfo: `{}` is both given and listed in `unsupported`",
                    category.as_str()
                ));
            }
        }
        if let Some(cpu) = &self.cpu {
            if cpu.logical_cores == 0 {
                return Err("sysinfo.cpu: `logical-cores` must be at least 1".into());
            }
            if cpu
                .physical_cores
                .is_some_and(|p| p == 0 || p > cpu.logical_cores)
            {
                return Err(
                    "sysinfo.cpu: `physical-cores` must be between 1 and `logical-cores`".into(),
                );
            }
        }
        if let Some(m) = &self.memory {
            if m.available_bytes > m.total_bytes {
                return Err("sysinfo.memory: `available-bytes` is more than `total-bytes`".into());
            }
            if m.swap_free_bytes > m.swap_total_bytes {
                return Err(
                    "sysinfo.memory: `swap-free-bytes` is more than `swap-total-bytes`".into(),
                );
            }
        }
        for (i, d) in self.disks.iter().flatten().enumerate() {
            if d.mount_point.is_empty() {
                return Err(format!("sysinfo.disks[{i}]: `mount-point` is empty"));
            }
            if d.available_bytes > d.total_bytes {
                return Err(format!(
                    "sysinfo.disks[{i}] ({}): `available-bytes` is more than `total-bytes`",
                    d.mount_point
                ));
            }
        }
        distinct(
            "sysinfo.disks",
            "mount point",
            self.disks.iter().flatten().map(|d| d.mount_point.clone()),
        )?;
        distinct(
            "sysinfo.network",
            "name",
            self.network.iter().flatten().map(|n| n.name.clone()),
        )?;
        distinct(
            "sysinfo.processes",
            "pid",
            self.processes.iter().flatten().map(|p| p.pid.to_string()),
        )?;
        for (i, p) in self.processes.iter().flatten().enumerate() {
            if !(p.cpu_percent.is_finite() && p.cpu_percent >= 0.0) {
                return Err(format!(
                    "sysinfo.processes[{i}] ({}): `cpu-percent` must be a number of at least 0",
                    p.name
                ));
            }
        }
        Ok(())
    }
}

/// Each of `keys` at most once.
fn distinct(field: &str, what: &str, keys: impl Iterator<Item = String>) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for key in keys {
        if !seen.insert(key.clone()) {
            return Err(format!("{field}: two entries have the {what} `{key}`"));
        }
    }
    Ok(())
}

/// What must hold after the run. Every field is optional; an empty `[expect]` still fails a case
/// whose plugin made a capability call its grant denies.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Expect {
    /// The check's status (`run = "check"`).
    #[serde(default)]
    pub status: Option<CheckStatus>,
    /// Text the check's summary contains.
    #[serde(default)]
    pub summary: Option<String>,
    /// The run must fail with this error kind (`plugin`, `invalid-config`, `trap`, ...).
    #[serde(default)]
    pub error: Option<String>,
    /// Text the error message contains.
    #[serde(default)]
    pub error_contains: Option<String>,
    /// Fact groups that must be reported, each with at least these facts (`run = "discover"`).
    #[serde(default)]
    pub facts: Vec<ExpectedFacts>,
    /// The plan, action by action, comparing the fields given (`run = "plan"` or `"apply"`).
    #[serde(default)]
    pub plan: Option<Vec<ExpectedAction>>,
    /// Each apply outcome's status, in order (`run = "apply"`).
    #[serde(default)]
    pub outcomes: Option<Vec<OutcomeStatus>>,
    /// Allowed capability calls that must appear, in this order (other calls may come between):
    /// `"<capability>.<function> <target> [args]"`, e.g. `"fs.stat /var/log/app.log"`.
    #[serde(default)]
    pub calls: Vec<String>,
    /// Capability calls the grant is expected to deny. Any other denied call fails the case.
    #[serde(default)]
    pub denied: Vec<String>,
    /// Service states after the run.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceState>,
    /// kv entries after the run (UTF-8 values).
    #[serde(default)]
    pub kv: BTreeMap<String, String>,
    /// Files after the run: their text, or `{ absent = true }`.
    #[serde(default)]
    pub files: BTreeMap<String, ExpectedFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExpectedFacts {
    pub kind: String,
    #[serde(default)]
    pub facts: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExpectedAction {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub kind: Option<ActionKind>,
    #[serde(default)]
    pub target: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ExpectedFile {
    Text(String),
    Absent {
        #[allow(dead_code)]
        absent: AlwaysTrue,
    },
}

/// `absent = true`; `absent = false` means nothing and is refused.
#[derive(Debug, Clone, Copy)]
pub struct AlwaysTrue;

impl<'de> Deserialize<'de> for AlwaysTrue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match bool::deserialize(d)? {
            true => Ok(AlwaysTrue),
            false => Err(serde::de::Error::custom(
                "`absent = false` says nothing: give the expected text instead",
            )),
        }
    }
}

/// A fixture that cannot be used, with what to change.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    // `error`, not `source`: the message already says it, and a source would repeat it.
    #[error("cannot read fixture {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("fixture {path} is larger than {MAX_FIXTURE_BYTES} bytes")]
    TooLarge { path: String },
    #[error("fixture {path}: {message}")]
    Parse { path: String, message: String },
    #[error("fixture {path}: {message}")]
    Invalid { path: String, message: String },
}

impl Fixture {
    /// Read and check a fixture file.
    pub fn load(path: &Path) -> Result<Fixture, FixtureError> {
        let shown = path.display().to_string();
        let read = |error| FixtureError::Read {
            path: shown.clone(),
            error,
        };
        let len = std::fs::metadata(path).map_err(read)?.len();
        if len > MAX_FIXTURE_BYTES {
            return Err(FixtureError::TooLarge { path: shown });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        let mut fixture = Fixture::parse(&text, &shown)?;
        if fixture.name.is_none() {
            fixture.name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        }
        Ok(fixture)
    }

    /// Parse and check fixture text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Fixture, FixtureError> {
        let fixture: Fixture = toml::from_str(text).map_err(|e| FixtureError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        fixture
            .validate()
            .map_err(|message| FixtureError::Invalid {
                path: origin.to_string(),
                message,
            })?;
        Ok(fixture)
    }

    /// The case's name for results.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or("unnamed case")
    }

    /// Expectations that cannot apply to the call made, impossible files, bad call patterns.
    pub fn validate(&self) -> Result<(), String> {
        let e = &self.expect;
        let run = self.run;
        let only = |set: bool, field: &str, allowed: &[RunKind]| {
            if set && !allowed.contains(&run) {
                let names: Vec<&str> = allowed.iter().map(|k| k.as_str()).collect();
                return Err(format!(
                    "`expect.{field}` applies to run = {}, not run = \"{}\"",
                    names.join(" or "),
                    run.as_str()
                ));
            }
            Ok(())
        };
        only(
            e.status.is_some() || e.summary.is_some(),
            "status/summary",
            &[RunKind::Check],
        )?;
        only(!e.facts.is_empty(), "facts", &[RunKind::Discover])?;
        only(e.plan.is_some(), "plan", &[RunKind::Plan, RunKind::Apply])?;
        only(e.outcomes.is_some(), "outcomes", &[RunKind::Apply])?;
        if e.error.is_some() && (e.status.is_some() || !e.facts.is_empty() || e.outcomes.is_some())
        {
            return Err(
                "`expect.error` says the run fails; it cannot also expect a result (status, facts or outcomes)"
                    .into(),
            );
        }
        if !self.config.is_object() {
            return Err("`config` must be a table".into());
        }
        for (path, spec) in &self.files {
            check_path(path, "files")?;
            if let FileSpec::Detailed(d) = spec {
                if d.dir && (d.text.is_some() || d.size.is_some()) {
                    return Err(format!(
                        "files.\"{path}\": a directory has no `text` or `size`"
                    ));
                }
                if d.text.is_some() && d.size.is_some() {
                    return Err(format!("files.\"{path}\": give `text` or `size`, not both"));
                }
                if d.size.is_some_and(|s| s > MAX_FILLER_BYTES) {
                    return Err(format!(
                        "files.\"{path}\": `size` is at most {MAX_FILLER_BYTES} bytes"
                    ));
                }
            }
        }
        for path in e.files.keys() {
            check_path(path, "expect.files")?;
        }
        for (i, x) in self.exec.iter().enumerate() {
            if !x.program.starts_with('/') {
                return Err(format!(
                    "exec[{i}].program `{}` must be an absolute path, as the plugin calls it",
                    x.program
                ));
            }
        }
        self.sysinfo.validate()?;
        for call in e.calls.iter().chain(&e.denied) {
            let head = call.split(' ').next().unwrap_or_default();
            if !head.contains('.') || !call.contains(' ') {
                return Err(format!(
                    "call `{call}` is not `<capability>.<function> <target>`, e.g. `fs.read /etc/hostname`"
                ));
            }
        }
        Ok(())
    }
}

fn check_path(path: &str, field: &str) -> Result<(), String> {
    match warden_core::grant::normalize(Path::new(path)) {
        Some(n) if n.as_os_str() == path && n.components().count() > 1 => Ok(()),
        _ => Err(format!(
            "{field}: `{path}` is not a normal absolute path below / (no `..`, `.`, `//` or trailing `/`)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_fixture_parses() {
        let f = Fixture::parse(
            r#"
name = "big log"
run = "check"
[config]
path = "/var/log/app.log"
max_bytes = 1000
[files]
"/var/log/app.log" = { size = 2048, age-secs = 60 }
"/var/log/small.log" = "hello"
"/var/cache/app" = { dir = true }
[[exec]]
program = "/usr/bin/uptime"
stdout = "up"
[services]
nginx = "stopped"
[kv]
last = "x"
[expect]
status = "critical"
summary = "1000"
calls = ["fs.stat /var/log/app.log"]
services = { nginx = "stopped" }
[expect.files]
"/var/log/small.log" = "hello"
"/var/log/gone.log" = { absent = true }
"#,
            "inline",
        )
        .expect("valid");
        assert_eq!(f.run, RunKind::Check);
        assert_eq!(f.expect.status, Some(CheckStatus::Critical));
        assert_eq!(f.files.len(), 3);
        assert!(matches!(
            f.expect.files.get("/var/log/gone.log"),
            Some(ExpectedFile::Absent { .. })
        ));
    }

    #[test]
    fn mistakes_are_named_with_what_to_change() {
        let cases = [
            (
                "run = \"check\"\n[expect]\nplan = []\n",
                "`expect.plan` applies to run = plan or apply",
            ),
            (
                "run = \"check\"\n[files]\n\"var/x\" = \"a\"\n",
                "not a normal absolute path",
            ),
            (
                "run = \"check\"\n[files]\n\"/var/../x\" = \"a\"\n",
                "not a normal absolute path",
            ),
            (
                "run = \"check\"\n[[exec]]\nprogram = \"ls\"\n",
                "must be an absolute path",
            ),
            (
                "run = \"check\"\n[expect]\ncalls = [\"read /x\"]\n",
                "is not `<capability>.<function> <target>`",
            ),
            (
                "run = \"check\"\n[expect]\nerror = \"plugin\"\nstatus = \"ok\"\n",
                "cannot also expect a result",
            ),
            ("run = \"inspect\"\n", "unknown variant `inspect`"),
            ("run = \"check\"\ncolour = 1\n", "unknown field `colour`"),
            (
                "run = \"check\"\n[expect.files]\n\"/x/y\" = { absent = false }\n",
                "did not match",
            ),
        ];
        for (text, needle) in cases {
            let err = Fixture::parse(text, "f.toml").expect_err(text).to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_sysinfo_section_parses_with_the_optional_facts_defaulted() {
        let f = Fixture::parse(
            r#"
run = "discover"
[sysinfo]
hostname = "web-01"
uptime-secs = 3600
unsupported = ["processes"]
network = []
[sysinfo.os]
family = "linux"
name = "Debian GNU/Linux"
[sysinfo.cpu]
logical-cores = 8
physical-cores = 4
[sysinfo.memory]
total-bytes = 1000
available-bytes = 250
[[sysinfo.disks]]
mount-point = "/"
total-bytes = 100
available-bytes = 5
"#,
            "inline",
        )
        .expect("valid");
        let s = &f.sysinfo;
        assert_eq!(s.hostname.as_deref(), Some("web-01"));
        assert_eq!(s.uptime_secs, Some(3600));
        assert_eq!(s.unsupported, [SysinfoCategory::Processes]);
        assert_eq!(
            s.network.as_deref(),
            Some(&[][..]),
            "`network = []` is given, empty"
        );
        assert_eq!(s.os.as_ref().map(|o| o.kernel.as_str()), Some(""));
        assert_eq!(s.memory.as_ref().map(|m| m.swap_total_bytes), Some(0));
        let disk = &s.disks.as_ref().expect("disks")[0];
        assert_eq!((disk.device.as_str(), disk.removable), ("", false));
        assert!(s.gives(SysinfoCategory::Disks) && !s.gives(SysinfoCategory::Processes));
    }

    #[test]
    fn impossible_sysinfo_facts_are_named() {
        let cases = [
            ("[sysinfo]\nhostnme = \"x\"\n", "unknown field `hostnme`"),
            (
                "[[sysinfo.disks]]\nmount-point = \"/\"\ntotal-bytes = 1\navailable-bytes = 0\nsize = 3\n",
                "unknown field `size`",
            ),
            (
                "[[sysinfo.disks]]\nmount-point = \"/\"\ntotal-bytes = 1\n",
                "missing field `available-bytes`",
            ),
            // A value of the wrong type: the error shows the line, so the key is named.
            (
                "[sysinfo.memory]\ntotal-bytes = \"lots\"\navailable-bytes = 0\n",
                "total-bytes = \"lots\"",
            ),
            ("[sysinfo]\nuptime-secs = -1\n", "uptime-secs = -1"),
            (
                "[sysinfo]\nunsupported = [\"gpu\"]\n",
                "unknown variant `gpu`",
            ),
            (
                "[sysinfo]\nhostname = \"x\"\nunsupported = [\"hostname\"]\n",
                "`hostname` is both given and listed in `unsupported`",
            ),
            (
                "[[sysinfo.disks]]\nmount-point = \"/\"\ntotal-bytes = 1\navailable-bytes = 2\n",
                "sysinfo.disks[0] (/): `available-bytes` is more than `total-bytes`",
            ),
            (
                "[[sysinfo.disks]]\nmount-point = \"/\"\ntotal-bytes = 1\navailable-bytes = 1\n\
                 [[sysinfo.disks]]\nmount-point = \"/\"\ntotal-bytes = 1\navailable-bytes = 1\n",
                "two entries have the mount point `/`",
            ),
            (
                "[sysinfo.memory]\ntotal-bytes = 1\navailable-bytes = 2\n",
                "`available-bytes` is more than `total-bytes`",
            ),
            (
                "[sysinfo.cpu]\nlogical-cores = 2\nphysical-cores = 4\n",
                "`physical-cores` must be between 1 and `logical-cores`",
            ),
            (
                "[[sysinfo.processes]]\npid = 1\nname = \"a\"\ncpu-percent = -1.0\n",
                "`cpu-percent` must be a number of at least 0",
            ),
        ];
        for (section, needle) in cases {
            let text = format!("run = \"check\"\n{section}");
            let err = Fixture::parse(&text, "f.toml")
                .expect_err(&text)
                .to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
