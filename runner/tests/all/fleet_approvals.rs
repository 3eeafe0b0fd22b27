//! Four eyes through the NOC's command line (issue 16): `warden fleet run` above the
//! controller's `[approvals]` threshold prints the request instead of a run and exits 4;
//! `warden fleet approvals` lists it; the requester's own `warden fleet approve` is refused in
//! one line; a second operator's approval dispatches the run. The controller runs in this
//! process beside a real nats-server in operator mode; the two agents are enrolled (so the
//! target resolves to them) but need not be online: the run's commands wait for them.

use crate::common::controller::{ControllerUnderTest, text, warden_fleet as warden};
use warden_access::token_hash;
use warden_controller::controller::internal_caller;
use warden_fleet_identity::{AgentKey, EnrollmentRequest, TenantId};

const OP_A: &str = "tok-cli-operator-a-0123456789";
const OP_B: &str = "tok-cli-operator-b-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warden_fleet_shows_a_pending_run_and_a_second_operator_approves_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let acme = TenantId::new("acme").expect("tenant");
    let toml = format!(
        "data-dir = \"controller\"\ntenants = [\"acme\"]\n\
         [approvals]\nmax-agents = 1\nrequest-ttl-secs = 3600\n\
         [[tokens]]\nname = \"noc-a\"\nrole = \"operator\"\nsha256 = {:?}\n\
         [[tokens]]\nname = \"noc-b\"\nrole = \"operator\"\nsha256 = {:?}\n",
        token_hash(OP_A),
        token_hash(OP_B)
    );
    let cut = ControllerUnderTest::start(dir.path(), &toml).await;
    let controller = cut.running.controller.clone();
    for name in ["db-1", "db-2"] {
        let token = controller
            .issue_enrollment_token(&internal_caller(), &acme, &[], None)
            .expect("token");
        let key = AgentKey::generate();
        let challenge = controller
            .begin_enrollment(&EnrollmentRequest {
                token: token.token.clone(),
                tenant: "acme".into(),
                agent: key.id().to_string(),
                name: name.into(),
            })
            .expect("begin");
        controller
            .complete_enrollment(&key.answer(&challenge).expect("answer"))
            .expect("enrolled");
    }
    let addr = cut.addr.clone();

    let noc = dir.path().join("noc");
    tokio::task::block_in_place(|| {
        let run = warden(
            &noc,
            &addr,
            OP_A,
            &[
                "run",
                "patch",
                "--target",
                "tenant=acme",
                "--param",
                "kb=5031356",
            ],
        );
        let (stdout, stderr) = text(&run);
        eprintln!(
            "$ warden fleet run patch --target tenant=acme --param kb=5031356\n{stdout}{stderr}"
        );
        assert_eq!(run.status.code(), Some(4), "pending: {stdout}{stderr}");
        let first = stdout.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("needs approval: request ")
                && first.ends_with("(2 agents, over max-agents 1)"),
            "{stdout}"
        );
        let id = first
            .trim_start_matches("needs approval: request ")
            .split_whitespace()
            .next()
            .expect("an id")
            .to_string();
        assert!(
            stdout.contains("params kb=5031356  agents 2  tenants acme"),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("warden fleet approve {id}")),
            "{stdout}"
        );

        let list = warden(&noc, &addr, OP_B, &["approvals"]);
        let (stdout, _) = text(&list);
        eprintln!("$ warden fleet approvals\n{stdout}");
        assert!(list.status.success());
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 2, "a header and one request: {stdout}");
        assert!(lines[0].starts_with("ID "), "{stdout}");
        assert!(lines[1].starts_with(&id), "{stdout}");
        // Aligned: each header starts where its column does.
        let at = lines[0].find("BY").expect("BY");
        assert_eq!(&lines[1][at..at + 5], "noc-a", "{stdout}");
        assert!(lines[1].contains("pending"), "{stdout}");

        let own = warden(&noc, &addr, OP_A, &["approve", &id]);
        let (stdout, stderr) = text(&own);
        eprintln!("$ warden fleet approve {id}   # as noc-a\n{stdout}{stderr}");
        assert_eq!(own.status.code(), Some(1));
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.starts_with("warden: error: PermissionDenied: `noc-a` requested"),
            "{stderr}"
        );

        let approved = warden(&noc, &addr, OP_B, &["approve", &id]);
        let (stdout, stderr) = text(&approved);
        eprintln!("$ warden fleet approve {id}   # as noc-b\n{stdout}{stderr}");
        assert!(approved.status.success(), "{stderr}");
        assert!(
            stdout.starts_with(&format!("approved {id} by noc-b: run "))
                && stdout.contains(" to 2 agents (requested by noc-a)"),
            "{stdout}"
        );
    });
    cut.stop().await;
}
