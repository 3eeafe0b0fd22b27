//! NATS credentials: a user JWT and the seed of its key, in the `.creds` text format that NATS
//! clients read (`async_nats::ConnectOptions::with_credentials`, `nats --creds`).

use std::fmt;

use crate::authority::Seed;

/// A user JWT with its seed. Secret: `Debug` shows neither.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub jwt: String,
    pub seed: Seed,
    /// Unix seconds.
    pub expires_at: i64,
}

impl Credentials {
    pub fn new(jwt: String, seed: Seed, expires_at: i64) -> Credentials {
        Credentials {
            jwt,
            seed,
            expires_at,
        }
    }

    /// The `.creds` file text.
    pub fn creds(&self) -> String {
        format_creds(&self.jwt, self.seed.expose())
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The decorated format of nats-io/jwt `FormatUserConfig`.
pub(crate) fn format_creds(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n"
    )
}
