//! The agent's gRPC contract, `proto/warden/v1/warden.proto`, the controller's,
//! `proto/warden/fleet/v1/fleet.proto`, and the Rust types, servers and
//! clients generated from it (protox, so no system `protoc`). Wire types live here and in the
//! gRPC adapters only (`cargo xtask layers` checks it): the domain never names them.

/// Generated types, servers and clients of package `warden.v1`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("warden.v1");
}

/// Generated types, servers and clients of package `warden.fleet.v1`: the controller's API
/// (`proto/warden/fleet/v1/fleet.proto`).
#[allow(clippy::all, missing_docs)]
pub mod fleet {
    tonic::include_proto!("warden.fleet.v1");
}

/// The encoded `FileDescriptorSet` of `warden.v1`: every service and method the agent's API defines.
pub const DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/warden_descriptor.bin"));

/// The encoded `FileDescriptorSet` of `warden.fleet.v1`: every method of the controller's API.
pub const FLEET_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/fleet_descriptor.bin"));
