//! Operator accounts: `operator/<login>` settings holding an argon2id
//! password hash and a role. Hashing and verifying are CPU-heavy: callers
//! on the async runtime run these functions in `spawn_blocking`.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use serde::{Deserialize, Serialize};
use serde_json::json;
use siyu_store::Store;

/// What an operator may do. The server maps a role to scopes and checks
/// them against each route's declared access: analysts read; operators
/// also send events and write (definitions, sends, consent, spend); admins
/// may do everything, including erasure and managing keys and operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Operator,
    Analyst,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "operator" => Some(Role::Operator),
            "analyst" => Some(Role::Analyst),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Analyst => "analyst",
        }
    }
}

/// The stored record (settings value of `operator/<login>`), version 1.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OperatorRecord {
    pub v: u32,
    pub hash: String,
    pub role: Role,
    pub created_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    Invalid(String),
    #[error("store: {0}")]
    Store(#[from] siyu_store::StoreError),
    #[error("password hashing: {0}")]
    Hash(String),
    #[error("reading random bytes: {0}")]
    Random(#[from] std::io::Error),
}

const PREFIX: &str = "operator/";

/// A login is 1..=32 of `a-z 0-9 _ . -`, so it is safe in a settings key and a URL.
pub fn validate_login(login: &str) -> Result<(), AccountError> {
    let ok = !login.is_empty()
        && login.len() <= 32
        && login
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(AccountError::Invalid(format!(
            "login `{login}` must be 1..32 characters of a-z, 0-9, `_`, `.`, `-`"
        )))
    }
}

pub fn validate_password(password: &str) -> Result<(), AccountError> {
    if password.chars().count() < 8 || password.len() > 256 {
        return Err(AccountError::Invalid(
            "password must be 8..256 characters".into(),
        ));
    }
    Ok(())
}

/// `n` bytes from the OS generator (`getrandom`).
pub fn random_bytes<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| std::io::Error::other(format!("the OS random generator failed: {e}")))?;
    Ok(bytes)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An argon2id PHC string for `password` (slow: call off the runtime).
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    let salt = random_bytes::<16>()?;
    Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string (slow: call off the runtime).
pub fn verify_password(password: &str, phc: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

/// A fixed hash verified when a login does not exist, so an unknown login
/// costs as much time as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_password("not-a-real-password").unwrap_or_else(|_| String::from("$argon2id$v=19$"))
    })
}

pub fn get_operator(
    store: &mut dyn Store,
    login: &str,
) -> Result<Option<OperatorRecord>, AccountError> {
    validate_login(login)?;
    match store.get_setting(&format!("{PREFIX}{login}"))? {
        None => Ok(None),
        Some(v) => serde_json::from_value(v)
            .map(Some)
            .map_err(|e| AccountError::Invalid(format!("operator record of `{login}`: {e}"))),
    }
}

/// Every operator as (login, role, created_at), sorted by login.
pub fn list_operators(store: &mut dyn Store) -> Result<Vec<(String, Role, i64)>, AccountError> {
    Ok(store
        .list_settings(PREFIX)?
        .into_iter()
        .filter_map(|(k, v)| {
            let r: OperatorRecord = serde_json::from_value(v).ok()?;
            Some((
                k.trim_start_matches(PREFIX).to_string(),
                r.role,
                r.created_at,
            ))
        })
        .collect())
}

/// Creates or replaces an operator (hashes the password: slow).
pub fn put_operator(
    store: &mut dyn Store,
    login: &str,
    password: &str,
    role: Role,
    now: i64,
) -> Result<(), AccountError> {
    let hash = new_password_hash(password)?;
    save_operator(store, login, hash, role, now)
}

/// A validated password's hash, for [`save_operator`] (slow: call off
/// the runtime, and not while holding a shared store).
pub fn new_password_hash(password: &str) -> Result<PasswordHashed, AccountError> {
    validate_password(password)?;
    hash_password(password).map(PasswordHashed)
}

/// An argon2id PHC string made by [`new_password_hash`].
pub struct PasswordHashed(String);

/// Creates or replaces an operator with an already hashed password (fast).
pub fn save_operator(
    store: &mut dyn Store,
    login: &str,
    hash: PasswordHashed,
    role: Role,
    now: i64,
) -> Result<(), AccountError> {
    validate_login(login)?;
    let record = OperatorRecord {
        v: 1,
        hash: hash.0,
        role,
        created_at: now,
    };
    let value = serde_json::to_value(&record).map_err(|e| AccountError::Hash(e.to_string()))?;
    store.put_setting(&format!("{PREFIX}{login}"), Some(&value))?;
    store.audit(&siyu_store::AuditRecord {
        id: 0,
        at: now,
        action: "operator_saved".into(),
        subject: login.into(),
        detail: json!({"role": role.as_str()}),
    })?;
    Ok(())
}

/// Changes only the role of an existing operator.
pub fn set_role(
    store: &mut dyn Store,
    login: &str,
    role: Role,
    now: i64,
) -> Result<bool, AccountError> {
    let Some(mut record) = get_operator(store, login)? else {
        return Ok(false);
    };
    record.role = role;
    let value = serde_json::to_value(&record).map_err(|e| AccountError::Hash(e.to_string()))?;
    store.put_setting(&format!("{PREFIX}{login}"), Some(&value))?;
    store.audit(&siyu_store::AuditRecord {
        id: 0,
        at: now,
        action: "operator_role_changed".into(),
        subject: login.into(),
        detail: json!({"role": role.as_str()}),
    })?;
    Ok(true)
}

pub fn delete_operator(store: &mut dyn Store, login: &str, now: i64) -> Result<(), AccountError> {
    validate_login(login)?;
    store.put_setting(&format!("{PREFIX}{login}"), None)?;
    store.audit(&siyu_store::AuditRecord {
        id: 0,
        at: now,
        action: "operator_deleted".into(),
        subject: login.into(),
        detail: json!({}),
    })?;
    Ok(())
}

/// What a login is checked against: the operator's password hash and role.
pub struct Credentials {
    hash: String,
    role: Role,
}

/// The credentials of `login`, None when it is not an operator (or not a
/// valid login). A fast store read: the slow check is [`check_password`],
/// which callers run after letting go of the store.
pub fn credentials(
    store: &mut dyn Store,
    login: &str,
) -> Result<Option<Credentials>, AccountError> {
    if validate_login(login).is_err() {
        return Ok(None);
    }
    Ok(get_operator(store, login)?.map(|r| Credentials {
        hash: r.hash,
        role: r.role,
    }))
}

/// The operator's role when `password` matches (slow: call off the
/// runtime). No credentials (an unknown login) costs the same time as a
/// wrong password.
pub fn check_password(password: &str, credentials: Option<&Credentials>) -> Option<Role> {
    match credentials {
        Some(c) if verify_password(password, &c.hash) => Some(c.role),
        Some(_) => None,
        None => {
            verify_password(password, dummy_hash());
            None
        }
    }
}
