//! NATS JWTs (v2): the claim types this fleet uses, encoded and signed here.
//!
//! A NATS JWT is `base64url(header) . base64url(claims JSON) . base64url(ed25519 signature)`,
//! the header `{"typ":"JWT","alg":"ed25519-nkey"}`, the signature by the issuer's nkey over the
//! first two parts (nats-io/jwt v2 `ClaimsData.doEncode`). The crates.io `nats-jwt` 0.3 was
//! tried first and does not fit: it cannot write operator JWTs, account revocations, imports,
//! exports, scoped signing keys nor JetStream limits, and its `sign` panics on a clock before
//! 1970. The encoding is small and fully specified, so it lives here, with nkeys (0.4) doing
//! the ed25519 part. Field names and meanings follow nats-io/jwt v2.
//!
//! The `jti` is the SHA-512/256 of the whole claims JSON with `jti` empty. nats-io/jwt hashes
//! only the standard fields (not `nats`), so two account JWTs issued in the same second with
//! different revocations would share a `jti` — and the server's full resolver skips an update
//! whose `jti` equals the stored one. Hashing everything makes each content its own id.

use std::collections::BTreeMap;

use data_encoding::{BASE32_NOPAD, BASE64URL_NOPAD};
use nkeys::KeyPair;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512_256};

/// The header of every NATS v2 JWT, in the field order nats-io/jwt writes it.
const HEADER: &str = r#"{"typ":"JWT","alg":"ed25519-nkey"}"#;
/// `nats.version` of v2 claims.
const CLAIMS_VERSION: u32 = 2;
/// "No limit" in NATS limits (`jwt.NoLimit`).
pub const NO_LIMIT: i64 = -1;

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("not a JWT (three base64url parts separated by dots)")]
    Malformed,
    #[error("JWT header is not {HEADER}")]
    Header,
    #[error("JWT claims are not valid JSON of the expected kind: {0}")]
    Claims(#[source] serde_json::Error),
    #[error("JWT signature does not verify against its issuer")]
    Signature,
    #[error("JWT is of type {found:?}, expected {expected:?}")]
    Type { expected: String, found: String },
    #[error("nkey operation failed: {0}")]
    Key(#[source] nkeys::error::Error),
}

/// The standard fields of every NATS JWT, and `nats` the kind-specific part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims<N> {
    /// Expiry, unix seconds; `None`: never.
    #[serde(rename = "exp", default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
    #[serde(rename = "jti", default)]
    pub id: String,
    /// Issued at, unix seconds. Revocations compare against it.
    #[serde(rename = "iat")]
    pub issued_at: i64,
    /// Public key of the signer; set by [`encode`].
    #[serde(rename = "iss", default)]
    pub issuer: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Public key (or id) of what the JWT is about.
    #[serde(rename = "sub")]
    pub subject: String,
    pub nats: N,
}

/// The `nats.type` of a kind of claims.
pub trait ClaimKind {
    const TYPE: &'static str;
}

/// Sign `claims` with `signer` (setting `iss` and `jti`) and return the JWT.
pub fn encode<N: Serialize>(claims: &mut Claims<N>, signer: &KeyPair) -> Result<String, JwtError> {
    claims.issuer = signer.public_key();
    claims.id = String::new();
    let unhashed = serde_json::to_vec(claims).map_err(JwtError::Claims)?;
    claims.id = BASE32_NOPAD.encode(&Sha512_256::digest(&unhashed));
    let body = serde_json::to_vec(claims).map_err(JwtError::Claims)?;
    let signed = format!(
        "{}.{}",
        BASE64URL_NOPAD.encode(HEADER.as_bytes()),
        BASE64URL_NOPAD.encode(&body)
    );
    let signature = signer.sign(signed.as_bytes()).map_err(JwtError::Key)?;
    Ok(format!("{signed}.{}", BASE64URL_NOPAD.encode(&signature)))
}

/// Decode a JWT of kind `N`, checking the header, the kind and that its issuer signed it. Who
/// the issuer must be, and whether it has expired, is for the caller to judge.
pub fn decode<N: DeserializeOwned + ClaimKind>(token: &str) -> Result<Claims<N>, JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(body), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header_json = BASE64URL_NOPAD
        .decode(header.as_bytes())
        .map_err(|_| JwtError::Malformed)?;
    let header_value: serde_json::Value =
        serde_json::from_slice(&header_json).map_err(|_| JwtError::Header)?;
    let expected: serde_json::Value = serde_json::from_str(HEADER).map_err(|_| JwtError::Header)?;
    if header_value != expected {
        return Err(JwtError::Header);
    }
    let body_json = BASE64URL_NOPAD
        .decode(body.as_bytes())
        .map_err(|_| JwtError::Malformed)?;
    let signature = BASE64URL_NOPAD
        .decode(signature.as_bytes())
        .map_err(|_| JwtError::Malformed)?;
    // The kind first, so that a JWT of another kind says so rather than "missing field".
    let value: serde_json::Value = serde_json::from_slice(&body_json).map_err(JwtError::Claims)?;
    let found = value["nats"]["type"].as_str().unwrap_or_default();
    if found != N::TYPE {
        return Err(JwtError::Type {
            expected: N::TYPE.to_string(),
            found: found.to_string(),
        });
    }
    let claims: Claims<N> = serde_json::from_value(value).map_err(JwtError::Claims)?;
    let issuer = KeyPair::from_public_key(&claims.issuer).map_err(|_| JwtError::Signature)?;
    let signed_len = header.len() + 1 + body.len();
    issuer
        .verify(&token.as_bytes()[..signed_len], &signature)
        .map_err(|_| JwtError::Signature)?;
    Ok(claims)
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Allow and deny lists of subjects.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Permission {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

impl Permission {
    fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

/// Replies a user may publish to the reply subjects of messages it received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponsePermission {
    #[serde(rename = "max")]
    pub max_messages: i64,
    /// Nanoseconds, as Go's `time.Duration`.
    #[serde(rename = "ttl")]
    pub ttl_nanos: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Permissions {
    #[serde(rename = "pub", default, skip_serializing_if = "Permission::is_empty")]
    pub publish: Permission,
    #[serde(rename = "sub", default, skip_serializing_if = "Permission::is_empty")]
    pub subscribe: Permission,
    #[serde(rename = "resp", default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponsePermission>,
}

/// A user's permissions and limits (`jwt.UserPermissionLimits`): in a user JWT, or as the
/// template of a scoped signing key. A user signed by a scoped key must carry none of it (the
/// server refuses it otherwise), which the all-default value serializes to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserPermissionLimits {
    #[serde(flatten)]
    pub permissions: Permissions,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subs: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<i64>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub bearer_token: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_connection_types: Vec<String>,
}

impl UserPermissionLimits {
    /// No limits and no permission lists: everything allowed (a controller user).
    pub fn unlimited() -> UserPermissionLimits {
        UserPermissionLimits {
            subs: Some(NO_LIMIT),
            data: Some(NO_LIMIT),
            payload: Some(NO_LIMIT),
            ..UserPermissionLimits::default()
        }
    }
}

/// `nats` of an operator JWT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operator {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signing_keys: Vec<String>,
    pub system_account: String,
    /// Accounts must be signed by a signing key, never by the operator's identity key; and each
    /// account's users by one of its signing keys, never by the account key.
    #[serde(default, skip_serializing_if = "is_false")]
    pub strict_signing_key_usage: bool,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u32,
}

impl Operator {
    pub fn new(signing_keys: Vec<String>, system_account: String) -> Operator {
        Operator {
            signing_keys,
            system_account,
            strict_signing_key_usage: true,
            kind: Operator::TYPE.to_string(),
            version: CLAIMS_VERSION,
        }
    }
}

impl ClaimKind for Operator {
    const TYPE: &'static str = "operator";
}

/// An account's limits (`jwt.OperatorLimits`, untiered). JetStream is off while both storage
/// limits are 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountLimits {
    pub subs: i64,
    pub data: i64,
    pub payload: i64,
    pub imports: i64,
    pub exports: i64,
    pub wildcards: bool,
    /// Refuse bearer user JWTs: every user must sign the server's nonce with its key.
    pub disallow_bearer: bool,
    pub conn: i64,
    pub leaf: i64,
    #[serde(default)]
    pub mem_storage: i64,
    #[serde(default)]
    pub disk_storage: i64,
    #[serde(default)]
    pub streams: i64,
    #[serde(default)]
    pub consumer: i64,
}

impl AccountLimits {
    /// Everything unlimited (as `jwt.NewAccountClaims`), no bearer users, JetStream off.
    pub fn unlimited() -> AccountLimits {
        AccountLimits {
            subs: NO_LIMIT,
            data: NO_LIMIT,
            payload: NO_LIMIT,
            imports: NO_LIMIT,
            exports: NO_LIMIT,
            wildcards: true,
            disallow_bearer: true,
            conn: NO_LIMIT,
            leaf: NO_LIMIT,
            mem_storage: 0,
            disk_storage: 0,
            streams: 0,
            consumer: 0,
        }
    }

    /// With JetStream on, bounded only by the server's own limits.
    pub fn with_jetstream(mut self) -> AccountLimits {
        self.mem_storage = NO_LIMIT;
        self.disk_storage = NO_LIMIT;
        self.streams = NO_LIMIT;
        self.consumer = NO_LIMIT;
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportType {
    Stream,
    Service,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Export {
    pub name: String,
    pub subject: String,
    #[serde(rename = "type")]
    pub kind: ExportType,
    /// `Singleton` for a service answering once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Import {
    pub name: String,
    pub subject: String,
    /// The exporting account's public key.
    pub account: String,
    #[serde(rename = "type")]
    pub kind: ExportType,
}

/// A scoped signing key: users it signs get `template` and nothing else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserScope {
    /// Always `user_scope`.
    pub kind: String,
    pub key: String,
    pub role: String,
    pub template: UserPermissionLimits,
    #[serde(default)]
    pub description: String,
}

/// An entry of an account's `signing_keys`: a bare key (signs users with the permissions in
/// their own JWT) or a scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SigningKey {
    Plain(String),
    Scoped(Box<UserScope>),
}

/// `nats` of an account JWT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<Import>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exports: Vec<Export>,
    pub limits: AccountLimits,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signing_keys: Vec<SigningKey>,
    /// User public key (or `*`) -> unix seconds: user JWTs of that key issued at or before then
    /// are refused, and connections using them are closed when the update arrives.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub revocations: BTreeMap<String, i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u32,
}

impl Account {
    pub fn new(limits: AccountLimits) -> Account {
        Account {
            imports: Vec::new(),
            exports: Vec::new(),
            limits,
            signing_keys: Vec::new(),
            revocations: BTreeMap::new(),
            tags: Vec::new(),
            kind: Account::TYPE.to_string(),
            version: CLAIMS_VERSION,
        }
    }
}

impl ClaimKind for Account {
    const TYPE: &'static str = "account";
}

/// `nats` of a user JWT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    #[serde(flatten)]
    pub limits: UserPermissionLimits,
    /// The account's public key when a signing key (not the account key) signed the JWT.
    pub issuer_account: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u32,
}

impl User {
    pub fn new(limits: UserPermissionLimits, issuer_account: String) -> User {
        User {
            limits,
            issuer_account,
            tags: Vec::new(),
            kind: User::TYPE.to_string(),
            version: CLAIMS_VERSION,
        }
    }
}

impl ClaimKind for User {
    const TYPE: &'static str = "user";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_claims(subject: &str) -> Claims<User> {
        Claims {
            expires: Some(2_000_000_000),
            id: String::new(),
            issued_at: 1_700_000_000,
            issuer: String::new(),
            name: "n".into(),
            subject: subject.into(),
            nats: User::new(UserPermissionLimits::default(), "AX".into()),
        }
    }

    #[test]
    fn a_jwt_round_trips_and_its_issuer_is_checked() {
        let signer = KeyPair::new_account();
        let user = KeyPair::new_user();
        let mut claims = user_claims(&user.public_key());
        let token = encode(&mut claims, &signer).expect("encode");
        assert!(token.starts_with("eyJ"), "{token}");
        let decoded: Claims<User> = decode(&token).expect("decode");
        assert_eq!(decoded, claims);
        assert_eq!(decoded.issuer, signer.public_key());
        // A scoped user's JWT carries no permission or limit fields at all.
        let body = token.split('.').nth(1).expect("body");
        let json =
            String::from_utf8(BASE64URL_NOPAD.decode(body.as_bytes()).expect("b64")).expect("utf8");
        assert!(!json.contains("subs") && !json.contains("pub"), "{json}");

        // Any change to the claims breaks the signature, including swapping the issuer.
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        let mut forged = decoded.clone();
        forged.issuer = KeyPair::new_account().public_key();
        parts[1] = BASE64URL_NOPAD.encode(&serde_json::to_vec(&forged).expect("json"));
        assert!(matches!(
            decode::<User>(&parts.join(".")),
            Err(JwtError::Signature)
        ));
        assert!(matches!(decode::<User>("a.b"), Err(JwtError::Malformed)));
        assert!(matches!(
            decode::<Account>(&token),
            Err(JwtError::Type { .. })
        ));
    }

    #[test]
    fn the_id_covers_the_whole_content() {
        let signer = KeyPair::new_account();
        let mut a = Claims {
            expires: None,
            id: String::new(),
            issued_at: 1_700_000_000,
            issuer: String::new(),
            name: String::new(),
            subject: signer.public_key(),
            nats: Account::new(AccountLimits::unlimited()),
        };
        let mut b = a.clone();
        b.nats.revocations.insert("UX".into(), 1);
        encode(&mut a, &signer).expect("encode");
        encode(&mut b, &signer).expect("encode");
        assert_ne!(a.id, b.id);
    }
}
