//! Starting nats-server children that cannot outlive the test process.
//!
//! Drop stops the servers of a test that ends or panics, but not of a test binary that is
//! SIGKILLed (a CI timeout, a developer's `kill -9`). On Linux each child therefore gets
//! `PR_SET_PDEATHSIG(SIGKILL)`. That signal follows the death of the *thread* that forked the
//! child, not of the process, and test threads end all the time (as do tokio's blocking threads
//! a `restart` might run on), so every child is forked by one spawner thread that lives as long
//! as the process.

use std::io;
use std::process::{Child, Command};
use std::sync::{OnceLock, mpsc};

type Request = (Command, mpsc::Sender<io::Result<Child>>);

static SPAWNER: OnceLock<mpsc::Sender<Request>> = OnceLock::new();

/// Spawn `cmd` from the process-long spawner thread, tied to this process where the OS allows.
pub(crate) fn spawn(mut cmd: Command) -> io::Result<Child> {
    #[cfg(target_os = "linux")]
    die_with_this_process(&mut cmd);
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        // The receiver lives in the thread and the sender in a static: the thread never ends.
        std::thread::Builder::new()
            .name("natstest-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("starting the nats-server spawner thread");
        tx
    });
    let (tx, rx) = mpsc::channel();
    spawner
        .send((cmd, tx))
        .map_err(|_| io::Error::other("the nats-server spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| io::Error::other("the nats-server spawner thread did not answer"))?
}

/// In the child, between fork and exec: die with this process.
///
/// The pid is taken before the fork so that a process that died between the fork and the
/// `prctl` is noticed (the child was reparented, `getppid` differs) and the child does not exec.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn die_with_this_process(cmd: &mut Command) {
    use rustix::process::{Signal, getpid, getppid, set_parent_process_death_signal};
    use std::os::unix::process::CommandExt;
    let owner = getpid();
    // SAFETY: the closure runs in the forked child of a multi-threaded process, where only
    // async-signal-safe operations are allowed. It makes two system calls through rustix (prctl,
    // getppid), allocates nothing and takes no lock; `std::io::Error` from an errno does not
    // allocate either.
    unsafe {
        cmd.pre_exec(move || {
            set_parent_process_death_signal(Some(Signal::KILL))?;
            if getppid() != Some(owner) {
                return Err(rustix::io::Errno::SRCH.into());
            }
            Ok(())
        });
    }
}
