//! Publisher keys: ed25519 key pairs as small text files. The secret key file is created with
//! owner-only permissions before anything is written to it, and never overwritten.

pub use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

const SECRET_PREFIX: &str = "warden-ed25519-secret:";
const PUBLIC_PREFIX: &str = "warden-ed25519-public:";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} already exists; refusing to overwrite a key")]
    Exists { path: PathBuf },
    #[error("{what}: {message}")]
    Malformed { what: String, message: String },
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

/// The short id of a public key: the first 16 hex digits of its sha256.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// Parse a public key: 64 hex digits, optionally prefixed as in a `.pub` file.
pub fn parse_public(text: &str) -> Result<VerifyingKey, KeyError> {
    let malformed = |message: &str| KeyError::Malformed {
        what: "public key".into(),
        message: message.into(),
    };
    let hex_part = text
        .trim()
        .strip_prefix(PUBLIC_PREFIX)
        .unwrap_or(text.trim());
    let bytes: [u8; 32] = hex::decode(hex_part)
        .map_err(|_| malformed("expected 64 hex digits"))?
        .try_into()
        .map_err(|_| malformed("expected 32 bytes"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| malformed("not a valid ed25519 point"))
}

pub fn public_text(key: &VerifyingKey) -> String {
    format!("{PUBLIC_PREFIX}{}\n", hex::encode(key.as_bytes()))
}

/// Read a secret key file written by [`generate`].
pub fn load_secret(path: &Path) -> Result<SigningKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.into(),
        source,
    })?;
    let malformed = |message: &str| KeyError::Malformed {
        what: path.display().to_string(),
        message: message.into(),
    };
    let hex_part = text
        .trim()
        .strip_prefix(SECRET_PREFIX)
        .ok_or_else(|| malformed("not a warden secret key file"))?;
    let seed: [u8; 32] = hex::decode(hex_part)
        .map_err(|_| malformed("expected 64 hex digits"))?
        .try_into()
        .map_err(|_| malformed("expected 32 bytes"))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Create `<prefix>.key` (mode 0600) and `<prefix>.pub`; returns their paths.
pub fn generate(prefix: &Path) -> Result<(PathBuf, PathBuf, VerifyingKey), KeyError> {
    let secret_path = prefix.with_extension("key");
    let public_path = prefix.with_extension("pub");
    for p in [&secret_path, &public_path] {
        if p.exists() {
            return Err(KeyError::Exists { path: p.clone() });
        }
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    let key = SigningKey::from_bytes(&seed);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeyError::Io { path, source }
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&secret_path).map_err(io(&secret_path))?;
    file.write_all(format!("{SECRET_PREFIX}{}\n", hex::encode(seed)).as_bytes())
        .map_err(io(&secret_path))?;
    file.sync_all().map_err(io(&secret_path))?;
    let public = key.verifying_key();
    std::fs::write(&public_path, public_text(&public)).map_err(io(&public_path))?;
    Ok((secret_path, public_path, public))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Signer};

    /// RFC 8032, section 7.1, TEST 1 and TEST 2.
    #[test]
    fn rfc8032_known_answers() {
        let vectors = [
            (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                "",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
                "72",
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            ),
        ];
        for (secret, public, message, signature) in vectors {
            let seed: [u8; 32] = hex::decode(secret)
                .expect("hex")
                .try_into()
                .expect("32 bytes");
            let key = SigningKey::from_bytes(&seed);
            assert_eq!(hex::encode(key.verifying_key().as_bytes()), public);
            let message = hex::decode(message).expect("hex");
            let sig = key.sign(&message);
            assert_eq!(hex::encode(sig.to_bytes()), signature);
            let parsed = parse_public(public).expect("public key");
            let sig =
                Signature::from_slice(&hex::decode(signature).expect("hex")).expect("signature");
            assert!(parsed.verify_strict(&message, &sig).is_ok());
            assert!(parsed.verify_strict(b"other bytes", &sig).is_err());
        }
    }

    /// FIPS 180-2 examples for sha256, as the store and bundles use it.
    #[test]
    fn sha256_known_answers() {
        assert_eq!(
            crate::sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            crate::sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            crate::sha256_hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn generated_secret_key_is_owner_only_and_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (secret, public, key) = generate(&dir.path().join("publisher")).expect("generate");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&secret)
                .expect("meta")
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert_eq!(load_secret(&secret).expect("load").verifying_key(), key);
        assert_eq!(
            parse_public(&std::fs::read_to_string(public).expect("pub")).expect("parse"),
            key
        );
        assert!(matches!(
            generate(&dir.path().join("publisher")),
            Err(KeyError::Exists { .. })
        ));
    }
}
