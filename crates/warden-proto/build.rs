//! Generates the gRPC APIs' Rust types from `proto/` with protox (a pure-Rust protobuf compiler),
//! so building needs no system `protoc`. The encoded descriptor sets are kept for the APIs' tests,
//! which enumerate every method each server registers: one set per server (the agent's
//! `warden.v1`, the controller's `warden.fleet.v1`), so each server's tests see its own methods.

use prost::Message as _;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    for (file, descriptor) in [
        ("warden/v1/warden.proto", "warden_descriptor.bin"),
        ("warden/fleet/v1/fleet.proto", "fleet_descriptor.bin"),
    ] {
        let fds = protox::compile([file], ["proto"])?;
        std::fs::write(out.join(descriptor), fds.encode_to_vec())?;
        tonic_prost_build::configure()
            .build_client(true)
            .build_server(true)
            // `warden ctl --json` prints API messages as they are.
            .message_attribute(".", "#[derive(serde::Serialize)]")
            .enum_attribute(".", "#[derive(serde::Serialize)]")
            .compile_fds(fds)?;
    }
    Ok(())
}
