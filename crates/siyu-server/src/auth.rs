//! Keys. Every write (and read) needs a write key; keys are random, shown
//! once, and stored only as SHA-256 hashes (`write_key/<hash>` settings).
//! Admin endpoints need the admin token from the configuration.

use crate::error::ApiError;
use axum::http::HeaderMap;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use siyu_store::Store;
use std::collections::HashSet;

pub fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random key (`sk_` + 48 hex digits from the OS generator).
pub fn new_key() -> std::io::Result<String> {
    let bytes = siyu_console::accounts::random_bytes::<24>()?;
    Ok(format!(
        "sk_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// Creates and saves a write key; returns the key (shown once).
pub fn create_write_key(store: &mut dyn Store, name: &str, now: i64) -> anyhow::Result<String> {
    if name.is_empty() || name.len() > 64 {
        anyhow::bail!("key name must be 1..64 characters");
    }
    let key = new_key()?;
    store.put_setting(
        &format!("write_key/{}", hash_key(&key)),
        Some(&serde_json::json!({"name": name, "created_at": now})),
    )?;
    store.audit(&siyu_store::AuditRecord {
        id: 0,
        at: now,
        action: "write_key_created".into(),
        subject: name.into(),
        detail: serde_json::json!({}),
    })?;
    Ok(key)
}

/// Hashes of every saved write key.
pub fn load_key_hashes(store: &mut dyn Store) -> anyhow::Result<HashSet<String>> {
    Ok(store
        .list_settings("write_key/")?
        .into_iter()
        .map(|(k, _)| k.trim_start_matches("write_key/").to_string())
        .collect())
}

/// The credential of a request: `Authorization: Bearer <key>`, or HTTP basic
/// auth with the key as user name (what Segment's SDKs send).
pub fn credential(headers: &HeaderMap) -> Option<String> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    if let Some(token) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
    {
        return Some(token.trim().to_string());
    }
    let basic = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Some(
        text.split_once(':')
            .map_or(text.as_str(), |(user, _)| user)
            .to_string(),
    )
}

pub fn require_key(headers: &HeaderMap, keys: &HashSet<String>) -> Result<(), ApiError> {
    match credential(headers) {
        Some(k) if keys.contains(&hash_key(&k)) => Ok(()),
        _ => Err(ApiError::Unauthorized),
    }
}

pub fn require_admin(headers: &HeaderMap, admin_token: Option<&str>) -> Result<(), ApiError> {
    match (credential(headers), admin_token) {
        (Some(given), Some(token)) if constant_time_eq(given.as_bytes(), token.as_bytes()) => {
            Ok(())
        }
        _ => Err(ApiError::Forbidden),
    }
}

/// Equal bytes, compared in constant time (`subtle`); lengths are public.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.ct_eq(b))
}
