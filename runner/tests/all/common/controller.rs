//! A controller in this process from a config text, beside a real nats-server in operator
//! mode, its NOC gRPC API on a new loopback port: what the `warden fleet` command-line tests
//! talk to. Agents, when a test needs them, are enrolled through the controller's own calls.

use std::path::Path;
use std::process::{Command, Output};

use warden_controller::serve::{self, Options as ServeOptions, Running};
use warden_controller::{ControllerConfig, SystemClock};
use warden_natstest::{Nats, Options};

pub struct ControllerUnderTest {
    pub config: ControllerConfig,
    pub running: Running,
    /// `http://127.0.0.1:PORT`, the API.
    pub addr: String,
    stop: tokio::sync::oneshot::Sender<()>,
    _nats: Nats,
}

impl ControllerUnderTest {
    /// `toml` is the controller's config, as if in `<dir>/controller.toml`.
    pub async fn start(dir: &Path, toml: &str) -> ControllerUnderTest {
        let path = dir.join("controller.toml");
        let mut config = ControllerConfig::parse(toml, &path).expect("config");
        let fragment = serve::write_nats_config(&config.data_dir, &config).expect("nats config");
        let extra_config = std::fs::read_to_string(fragment).expect("fragment");
        let nats = tokio::task::block_in_place(|| {
            Nats::start(
                1,
                Options {
                    extra_config,
                    ..Options::default()
                },
            )
        })
        .expect("nats-server in operator mode (run `cargo xtask nats` first)");
        config.nats_url = nats.url(0);
        let running = serve::start(
            &config,
            std::sync::Arc::new(SystemClock),
            ServeOptions { tick: None },
        )
        .await
        .expect("controller starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let tokens = warden_access::Tokens::new(&config.tokens).expect("tokens");
        tokio::spawn(warden_controller::grpc::serve(
            running.controller.clone(),
            tokens,
            listener,
            async {
                let _ = stopped.await;
            },
        ));
        ControllerUnderTest {
            config,
            running,
            addr,
            stop,
            _nats: nats,
        }
    }

    pub async fn stop(mut self) {
        let _ = self.stop.send(());
        self.running.stop().await;
    }
}

/// `warden fleet <args>` as the holder of `token`, with `noc` as its data dir and working
/// directory (created), where files it writes without a path land.
pub fn warden_fleet(noc: &Path, addr: &str, token: &str, args: &[&str]) -> Output {
    std::fs::create_dir_all(noc).expect("noc dir");
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("--data-dir")
        .arg(noc)
        .current_dir(noc)
        .args(["fleet", "--addr", addr])
        .args(args)
        .env("WARDEN_TOKEN", token)
        .output()
        .expect("warden runs")
}

/// Standard output and standard error as text.
pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
