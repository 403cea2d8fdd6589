//! Keyed hashes that let siyu match and name people without storing a
//! value anyone can reverse: one random secret per workspace (settings
//! `privacy/secret`, 32 bytes from the OS, made at first start), from
//! which each use derives its own key.
//!
//! - **Phones** (`phone_hmac:<hex>`): `HMAC-SHA256(phone key, hex(SHA-256(
//!   normalized number)))`. An unsalted SHA-256 of a phone number is
//!   reversed by trying the ~10^10 numbers in seconds; without the secret
//!   nobody can. Hashing the SHA-256 rather than the number lets a brand
//!   that only holds SHA-256 hashed numbers send those (order field
//!   `phone_sha256`), and let the stored `phone_sha256:<hex>` identities
//!   of earlier versions be migrated without the numbers
//!   ([`migrate_phone_hashes`]).
//! - **Erasures**: the audit row of an erasure, and every settings or
//!   audit row that named the person, names `erased:<hex>` instead,
//!   `HMAC-SHA256(erasure key, canonical id)`: stable (erasing twice gives
//!   the same name), not reversible, and someone holding the secret and a
//!   candidate identity can still answer "was this person erased?".

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use siyu_console::accounts::{hex, random_bytes};
use siyu_domain::Identity;
use siyu_store::Store;

/// The settings key of the workspace secret (hex).
pub const SECRET_KEY: &str = "privacy/secret";
/// Set once the log holds no unkeyed phone hash (see [`migrate_phone_hashes`]).
pub const PHONE_MIGRATION_KEY: &str = "privacy/phone_hmac_migrated";
/// How an erasure pseudonym starts.
pub const ERASED_PREFIX: &str = "erased:";

/// Whether a settings or audit value names an erased person (see
/// [`PrivacyKeys::erasure_pseudonym`]): code acting on persons skips it.
pub fn is_erasure_pseudonym(s: &str) -> bool {
    s.strip_prefix(ERASED_PREFIX)
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The identity channel of keyed phone hashes.
pub const PHONE_CHANNEL: &str = "phone_hmac";
/// The identity channel of unkeyed phone hashes (versions before the
/// keyed hash), migrated at start and refused as an order channel.
pub const LEGACY_PHONE_CHANNEL: &str = "phone_sha256";

/// The keys derived from the workspace secret.
#[derive(Clone)]
pub struct PrivacyKeys {
    phone: [u8; 32],
    erasure: [u8; 32],
}

/// HMAC-SHA256 of `message` under `key`.
fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    hex(&hmac(key, message))
}

/// Whether `s` is a SHA-256 digest in lowercase hex.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl PrivacyKeys {
    pub fn from_secret(secret: &[u8]) -> PrivacyKeys {
        PrivacyKeys {
            phone: hmac(secret, b"siyu phone v1"),
            erasure: hmac(secret, b"siyu erasure v1"),
        }
    }

    /// The workspace's keys; the secret is made (OS randomness) and saved
    /// the first time. Two processes making it at the same moment both
    /// read back the one that was saved last.
    pub fn load_or_create(store: &mut dyn Store) -> anyhow::Result<PrivacyKeys> {
        if let Some(keys) = Self::load(store)? {
            return Ok(keys);
        }
        let secret = random_bytes::<32>()
            .map_err(|e| anyhow::anyhow!("reading OS randomness for the privacy secret: {e}"))?;
        // Nodes starting at once on an empty database: one secret wins.
        store.put_setting_if_absent(SECRET_KEY, &Value::String(hex(&secret)))?;
        Self::load(store)?.ok_or_else(|| anyhow::anyhow!("the privacy secret was not saved"))
    }

    fn load(store: &mut dyn Store) -> anyhow::Result<Option<PrivacyKeys>> {
        match store.get_setting(SECRET_KEY)? {
            None => Ok(None),
            Some(Value::String(h)) if h.len() == 64 => Ok(Some(Self::from_secret(h.as_bytes()))),
            Some(_) => anyhow::bail!(
                "setting `{SECRET_KEY}` is not 64 hex digits; restore it from a backup (phone matching and erasure names depend on it)"
            ),
        }
    }

    /// `phone_hmac:<hex>` of a normalized number.
    pub fn phone_identity(&self, normalized: &str) -> Identity {
        self.phone_identity_of_sha256(&hex(&Sha256::digest(normalized.as_bytes())))
    }

    /// `phone_hmac:<hex>` of a number given as the lowercase hex of its
    /// SHA-256 (see the module docs).
    pub fn phone_identity_of_sha256(&self, sha256_hex: &str) -> Identity {
        let id = format!(
            "{PHONE_CHANNEL}:{}",
            hmac_hex(&self.phone, sha256_hex.as_bytes())
        );
        // Valid by construction: a valid channel, ':' and 64 hex digits.
        Identity::parse(&id).expect("a hex digest is a valid id")
    }

    /// The name an erased person keeps in the audit log and settings.
    pub fn erasure_pseudonym(&self, canonical: &str) -> String {
        format!(
            "{ERASED_PREFIX}{}",
            &hmac_hex(&self.erasure, canonical.as_bytes())[..32]
        )
    }
}

/// Renames every `phone_sha256:<hex>` identity of the store to its keyed
/// `phone_hmac:` form, everywhere the store keeps identities
/// (`Store::rename_identities`), once: later starts skip the scan.
/// Returns the identities renamed; when any were, an engine snapshot
/// written before is stale and must not be loaded.
pub fn migrate_phone_hashes(store: &mut dyn Store, keys: &PrivacyKeys) -> anyhow::Result<usize> {
    if phone_hashes_marked_keyed(store)? {
        return Ok(0);
    }
    let prefix = format!("{LEGACY_PHONE_CHANNEL}:");
    let renames: Vec<(Identity, Identity)> = store
        .logged_identities_with_prefix(&prefix)?
        .into_iter()
        .filter_map(|old| {
            let digest = old.as_str()[prefix.len()..].to_string();
            // Only digests this module's predecessor wrote; anything else
            // under that channel is the brand's own and stays.
            is_sha256_hex(&digest).then(|| (old, keys.phone_identity_of_sha256(&digest)))
        })
        .collect();
    store.rename_identities(&renames)?;
    mark_phone_hashes_keyed(store)?;
    Ok(renames.len())
}

/// Whether the store is marked as holding no unkeyed phone hash (the
/// migration's scan is then skipped).
pub fn phone_hashes_marked_keyed(store: &mut dyn Store) -> siyu_store::Result<bool> {
    Ok(store.get_setting(PHONE_MIGRATION_KEY)?.is_some())
}

/// Marks the store as holding no unkeyed phone hash: after the migration,
/// or by an import whose engine (every identity of the log) has none.
pub fn mark_phone_hashes_keyed(store: &mut dyn Store) -> siyu_store::Result<()> {
    store.put_setting(PHONE_MIGRATION_KEY, Some(&Value::Bool(true)))
}

/// What every process opening a workspace's store for phones does first
/// (the server at start, `siyu import-orders`): the keys (made if
/// missing) and the phone hash migration; when that renamed anything, the
/// engine snapshot at `snapshot_path` (which names the old identities) is
/// removed so the next start replays the log.
pub fn prepare(
    store: &mut dyn Store,
    snapshot_path: &std::path::Path,
) -> anyhow::Result<PrivacyKeys> {
    let keys = PrivacyKeys::load_or_create(store)?;
    let renamed = migrate_phone_hashes(store, &keys)?;
    if renamed > 0 {
        tracing::info!(renamed, "phone hashes migrated to keyed hashes");
        match std::fs::remove_file(snapshot_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(anyhow::Error::new(e).context(format!(
                    "removing the stale engine snapshot {}",
                    snapshot_path.display()
                )))
            }
            _ => {}
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_hashes_are_keyed_and_agree_with_their_sha256_form() {
        let a = PrivacyKeys::from_secret(b"one secret");
        let b = PrivacyKeys::from_secret(b"another secret");
        let sha = hex(&Sha256::digest(b"13800000000"));
        assert_eq!(
            a.phone_identity("13800000000"),
            a.phone_identity_of_sha256(&sha)
        );
        assert_ne!(
            a.phone_identity("13800000000"),
            b.phone_identity("13800000000")
        );
        assert!(!a.phone_identity("13800000000").as_str().contains(&sha));
        assert_eq!(
            a.erasure_pseudonym("wecom:x"),
            a.erasure_pseudonym("wecom:x")
        );
        assert_ne!(
            a.erasure_pseudonym("wecom:x"),
            b.erasure_pseudonym("wecom:x")
        );
        assert!(is_sha256_hex(&sha) && !is_sha256_hex("13800000000"));
        assert!(is_erasure_pseudonym(&a.erasure_pseudonym("wecom:x")));
        assert!(!is_erasure_pseudonym("erased:x") && !is_erasure_pseudonym("wecom:x"));
    }
}
