//! The fake machine of a test case: `exec` answered from the fixture's script, a service
//! manager whose states live in memory, and `sysinfo` facts from the fixture's `[sysinfo]`. All
//! are shared with the runner through `HostEnv` and reset for each case, so one compiled plugin
//! serves every case.

use super::fixture::{ScriptedExec, SysinfoFacts};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use warden_core::manifest::SysinfoCategory;
use warden_host::host_env::Programs;
use warden_host::process::{Finished, ProcessError, Spawn};
use warden_host::service_manager::{ServiceAction, ServiceError, ServiceManager, ServiceState};
use warden_host::sysinfo_source::{
    CpuInfo, DiskInfo, MemoryInfo, NetworkInterface, OsInfo, ProcessInfo, SysinfoError,
    SysinfoSource,
};

/// A lock whose holder panicked is used as is: the fakes' state is plain data a panic cannot
/// leave half-updated in a way that matters to a test.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug, Default)]
struct State {
    script: Vec<ScriptedExec>,
    services: BTreeMap<String, ServiceState>,
    /// Programs called that the script does not answer: reported with the case's failures.
    unscripted: Vec<String>,
}

/// The programs and services of the case being run.
#[derive(Debug, Clone, Default)]
pub struct FakeMachine(Arc<Mutex<State>>);

impl FakeMachine {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.0)
    }

    /// Start a case: its script and service states, nothing recorded.
    pub fn reset(&self, script: Vec<ScriptedExec>, services: BTreeMap<String, ServiceState>) {
        let mut s = self.state();
        s.script = script;
        s.services = services;
        s.unscripted.clear();
    }

    pub fn services(&self) -> BTreeMap<String, ServiceState> {
        self.state().services.clone()
    }

    /// `exec` calls the script had no answer for.
    pub fn unscripted(&self) -> Vec<String> {
        self.state().unscripted.clone()
    }
}

impl Programs for FakeMachine {
    fn run(&self, spawn: Spawn<'_>) -> Result<Finished, ProcessError> {
        let mut s = self.state();
        let found = s.script.iter().find(|x| {
            x.program == spawn.program && x.args.as_deref().is_none_or(|a| a == spawn.args)
        });
        match found {
            Some(x) => {
                let cap = spawn.output_cap;
                let clip = |text: &str| text.as_bytes()[..text.len().min(cap)].to_vec();
                Ok(Finished {
                    exit_code: Some(x.exit_code),
                    stdout: clip(&x.stdout),
                    stderr: clip(&x.stderr),
                    truncated: x.stdout.len() > cap || x.stderr.len() > cap,
                })
            }
            None => {
                let call = std::iter::once(spawn.program)
                    .chain(spawn.args.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(" ");
                s.unscripted.push(call);
                // What a machine without the program would answer.
                Err(ProcessError::NotFound(spawn.program.to_string()))
            }
        }
    }
}

impl ServiceManager for FakeMachine {
    fn name(&self) -> &'static str {
        "fixture"
    }

    fn status(
        &self,
        service: &str,
        _: Duration,
        _: &dyn Fn() -> bool,
    ) -> Result<ServiceState, ServiceError> {
        self.state()
            .services
            .get(service)
            .copied()
            .ok_or_else(|| ServiceError::NotFound(service.to_string()))
    }

    fn control(
        &self,
        service: &str,
        action: ServiceAction,
        _: Duration,
        _: &dyn Fn() -> bool,
    ) -> Result<(), ServiceError> {
        let mut s = self.state();
        let state = s
            .services
            .get_mut(service)
            .ok_or_else(|| ServiceError::NotFound(service.to_string()))?;
        *state = match action {
            ServiceAction::Start | ServiceAction::Restart => ServiceState::Running,
            ServiceAction::Stop => ServiceState::Stopped,
        };
        Ok(())
    }
}

#[derive(Debug, Default)]
struct SysinfoState {
    facts: SysinfoFacts,
    /// Categories read that the case does not give, in the order first read.
    missing: Vec<SysinfoCategory>,
}

/// The `sysinfo` facts of the case being run. Asked only after the grant allowed the category.
#[derive(Debug, Clone, Default)]
pub struct FakeSysinfo(Arc<Mutex<SysinfoState>>);

impl FakeSysinfo {
    /// Start a case: its facts, nothing recorded.
    pub fn reset(&self, facts: SysinfoFacts) {
        let mut s = lock(&self.0);
        s.facts = facts;
        s.missing.clear();
    }

    /// Categories the plugin read that the case does not give: reported with its failures.
    pub fn missing(&self) -> Vec<SysinfoCategory> {
        lock(&self.0).missing.clone()
    }

    fn answer<T>(
        &self,
        category: SysinfoCategory,
        pick: impl FnOnce(&SysinfoFacts) -> Option<T>,
    ) -> Result<T, SysinfoError> {
        let mut s = lock(&self.0);
        if s.facts.unsupported.contains(&category) {
            return Err(SysinfoError::Unsupported(format!(
                "the fixture lists `{}` in sysinfo.unsupported",
                category.as_str()
            )));
        }
        match pick(&s.facts) {
            Some(value) => Ok(value),
            None => {
                if !s.missing.contains(&category) {
                    s.missing.push(category);
                }
                // What a machine without the category answers; the case fails regardless.
                Err(SysinfoError::Unsupported(format!(
                    "the fixture gives no `{}` (sysinfo `{}`)",
                    SysinfoFacts::key(category),
                    category.as_str()
                )))
            }
        }
    }
}

impl SysinfoSource for FakeSysinfo {
    fn hostname(&self) -> Result<String, SysinfoError> {
        self.answer(SysinfoCategory::Hostname, |f| f.hostname.clone())
    }

    fn os(&self) -> Result<OsInfo, SysinfoError> {
        self.answer(SysinfoCategory::Os, |f| f.os.clone())
    }

    fn cpu(&self) -> Result<CpuInfo, SysinfoError> {
        self.answer(SysinfoCategory::Cpu, |f| f.cpu.clone())
    }

    fn memory(&self) -> Result<MemoryInfo, SysinfoError> {
        self.answer(SysinfoCategory::Memory, |f| f.memory.clone())
    }

    fn disks(&self) -> Result<Vec<DiskInfo>, SysinfoError> {
        self.answer(SysinfoCategory::Disks, |f| f.disks.clone())
    }

    fn network_interfaces(&self) -> Result<Vec<NetworkInterface>, SysinfoError> {
        // Sorted, as the real source answers, whatever order the fixture lists them in.
        let mut out = self.answer(SysinfoCategory::Network, |f| f.network.clone())?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn uptime_secs(&self) -> Result<u64, SysinfoError> {
        self.answer(SysinfoCategory::Uptime, |f| f.uptime_secs)
    }

    fn processes(&self) -> Result<Vec<ProcessInfo>, SysinfoError> {
        let mut out = self.answer(SysinfoCategory::Processes, |f| f.processes.clone())?;
        out.sort_by_key(|p| p.pid);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spawn<'a>(
        program: &'a str,
        args: &'a [String],
        cancelled: &'a dyn Fn() -> bool,
    ) -> Spawn<'a> {
        Spawn {
            program,
            args,
            stdin: None,
            timeout: Duration::from_secs(1),
            output_cap: 4,
            cancelled,
        }
    }

    #[test]
    fn the_first_matching_script_entry_answers_and_others_are_recorded() {
        let m = FakeMachine::default();
        let entry = |args: Option<Vec<String>>, out: &str| ScriptedExec {
            program: "/bin/df".into(),
            args,
            exit_code: 3,
            stdout: out.into(),
            stderr: String::new(),
        };
        m.reset(
            vec![entry(Some(vec!["-P".into()]), "posix"), entry(None, "any")],
            BTreeMap::new(),
        );
        let never = || false;
        let p = vec!["-P".to_string()];
        let out = m.run(spawn("/bin/df", &p, &never)).expect("scripted");
        assert_eq!(out.stdout, b"posi");
        assert!(out.truncated);
        assert_eq!(out.exit_code, Some(3));
        let other = vec!["-h".to_string()];
        assert_eq!(
            m.run(spawn("/bin/df", &other, &never)).expect("any").stdout,
            b"any"
        );
        assert!(matches!(
            m.run(spawn("/bin/rm", &other, &never)),
            Err(ProcessError::NotFound(_))
        ));
        assert_eq!(m.unscripted(), vec!["/bin/rm -h".to_string()]);
    }

    #[test]
    fn services_change_state_when_controlled() {
        let m = FakeMachine::default();
        m.reset(
            vec![],
            BTreeMap::from([("nginx".to_string(), ServiceState::Failed)]),
        );
        let never = || false;
        let t = Duration::from_secs(1);
        m.control("nginx", ServiceAction::Restart, t, &never)
            .expect("known");
        assert_eq!(
            m.status("nginx", t, &never).expect("known"),
            ServiceState::Running
        );
        assert!(matches!(
            m.status("sshd", t, &never),
            Err(ServiceError::NotFound(_))
        ));
    }

    #[test]
    fn sysinfo_answers_what_the_case_gives_and_records_what_it_does_not() {
        let f = FakeSysinfo::default();
        f.reset(SysinfoFacts {
            hostname: Some("web-01".into()),
            processes: Some(vec![
                ProcessInfo {
                    pid: 9,
                    name: "b".into(),
                    memory_bytes: 0,
                    cpu_percent: 0.0,
                },
                ProcessInfo {
                    pid: 1,
                    name: "a".into(),
                    memory_bytes: 0,
                    cpu_percent: 0.0,
                },
            ]),
            unsupported: vec![SysinfoCategory::Os],
            ..Default::default()
        });
        assert_eq!(f.hostname().expect("given"), "web-01");
        let pids: Vec<u32> = f
            .processes()
            .expect("given")
            .iter()
            .map(|p| p.pid)
            .collect();
        assert_eq!(pids, [1, 9], "sorted by pid, as the real source answers");
        assert!(matches!(f.os(), Err(SysinfoError::Unsupported(_))));
        assert!(
            f.missing().is_empty(),
            "an unsupported category is not missing"
        );
        assert_eq!(
            f.disks(),
            Err(SysinfoError::Unsupported(
                "the fixture gives no `sysinfo.disks` (sysinfo `disks`)".into()
            )),
            "a missing category names the fixture key that would give it"
        );
        assert_eq!(
            f.uptime_secs(),
            Err(SysinfoError::Unsupported(
                "the fixture gives no `sysinfo.uptime-secs` (sysinfo `uptime`)".into()
            ))
        );
        assert!(f.disks().is_err());
        assert_eq!(
            f.missing(),
            [SysinfoCategory::Disks, SysinfoCategory::Uptime],
            "each missing category once, in the order first read"
        );
        f.reset(SysinfoFacts::default());
        assert!(
            f.missing().is_empty(),
            "a new case starts with nothing recorded"
        );
    }
}
