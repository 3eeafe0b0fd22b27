//! The agent's gRPC contract, `proto/warden/v1/warden.proto`, and the Rust types, servers and
//! clients generated from it (protox, so no system `protoc`). Wire types live here and in the
//! gRPC adapters only (`cargo xtask layers` checks it): the domain never names them.

/// Generated types, servers and clients of package `warden.v1`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("warden.v1");
}

/// The encoded `FileDescriptorSet` of `warden.v1`: every service and method the API defines.
pub const DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/warden_descriptor.bin"));
