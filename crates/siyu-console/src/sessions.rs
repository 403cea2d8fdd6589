//! Console sessions in the store, so a restart logs nobody out: settings
//! `console_session/<sha256 of the token>` = `{v, login, role, csrf,
//! expires_at}`. Only the hash of the token is stored — reading the store
//! does not give a session away. Records are deleted on logout, when an
//! operator's role changes or the operator is deleted, and when they are
//! found expired (on load, and swept at each login).
//!
//! Blocking store calls: the callers run them in `spawn_blocking`.

use crate::accounts::Role;
use crate::Session;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use siyu_store::{Store, StoreError};

pub const PREFIX: &str = "console_session/";

/// The stored record, version 1.
#[derive(Serialize, Deserialize)]
struct Record {
    v: u32,
    login: String,
    role: Role,
    csrf: String,
    expires_at: i64,
}

/// Lowercase hex SHA-256 of a session token: its name in memory and in
/// the store.
pub fn token_hash(token: &str) -> String {
    crate::accounts::hex(&Sha256::digest(token.as_bytes()))
}

/// Whether `token` looks like one we hand out (64 hex digits), so a junk
/// cookie costs no store lookup.
pub fn plausible_token(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

fn key(hash: &str) -> String {
    format!("{PREFIX}{hash}")
}

/// Stores the session named by `hash`.
pub fn save(store: &mut dyn Store, hash: &str, s: &Session) -> Result<(), StoreError> {
    let record = Record {
        v: 1,
        login: s.login.clone(),
        role: s.role,
        csrf: s.csrf.clone(),
        expires_at: s.expires_at,
    };
    // A struct of strings and integers always serializes.
    let value = serde_json::to_value(&record).unwrap_or_default();
    store.put_setting(&key(hash), Some(&value))
}

/// The live session named by `hash`; an expired or unreadable record is
/// deleted and reads as none.
pub fn load(store: &mut dyn Store, hash: &str, now: i64) -> Result<Option<Session>, StoreError> {
    let Some(value) = store.get_setting(&key(hash))? else {
        return Ok(None);
    };
    match serde_json::from_value::<Record>(value) {
        Ok(r) if r.v == 1 && now < r.expires_at => Ok(Some(Session {
            login: r.login,
            role: r.role,
            csrf: r.csrf,
            expires_at: r.expires_at,
        })),
        _ => {
            store.put_setting(&key(hash), None)?;
            Ok(None)
        }
    }
}

/// Deletes the session named by `hash` (logout).
pub fn forget(store: &mut dyn Store, hash: &str) -> Result<(), StoreError> {
    store.put_setting(&key(hash), None)
}

/// Deletes the stored record of every session matching `doomed`.
fn forget_where(
    store: &mut dyn Store,
    doomed: impl Fn(Option<&Record>) -> bool,
) -> Result<usize, StoreError> {
    let mut n = 0;
    for (k, v) in store.list_settings(PREFIX)? {
        let record = serde_json::from_value::<Record>(v).ok();
        if doomed(record.as_ref()) {
            store.put_setting(&k, None)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Deletes every stored session of `login` (role changed, operator deleted).
pub fn forget_login(store: &mut dyn Store, login: &str) -> Result<usize, StoreError> {
    forget_where(store, |r| r.is_some_and(|r| r.login == login))
}

/// Deletes every expired (or unreadable) stored session.
pub fn sweep(store: &mut dyn Store, now: i64) -> Result<usize, StoreError> {
    forget_where(store, |r| r.is_none_or(|r| now >= r.expires_at))
}
