//! The fake machine of a test case: `exec` answered from the fixture's script and a service
//! manager whose states live in memory. Both are shared with the runner through `HostEnv` and
//! reset for each case, so one compiled plugin serves every case.

use super::fixture::ScriptedExec;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use warden_host::host_env::Programs;
use warden_host::process::{Finished, ProcessError, Spawn};
use warden_host::service_manager::{ServiceAction, ServiceError, ServiceManager, ServiceState};

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
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters to a test, so a poisoned lock is used as is.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
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
}
