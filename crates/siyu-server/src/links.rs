//! Opaque signed public links: unsubscribe links, tracked content links,
//! fission invite codes and the claim tokens of live codes and signups.
//!
//! A URL never carries an identity (a phone number, a WeCom id) in any
//! form readable without the secret. Each identity gets a *link id*, the
//! first 128 bits of HMAC-SHA256(secret, "link-id" ‖ 0 ‖ identity): the
//! same identity always gets the same id, and the id reveals nothing. The
//! server keeps `link_id/<id>` → identity in settings (written when a link
//! is made, [`remember`]; removed on erasure, [`forget`]), so a link is
//! resolved by one primary-key read.
//!
//! - A **link token** is `<link id>.<mac>`, mac = HMAC-SHA256(secret,
//!   purpose ‖ 0 ‖ link id), 128 bits in hex; the purpose ("unsubscribe",
//!   "content", "invite/<campaign>") keeps a token of one kind from being
//!   replayed as another.
//! - A **claim token** proves that whoever presents it is that identity,
//!   for one live code or campaign, until it expires: `<link id>.<expires
//!   at>.<mac>`, mac over "claim/<scope>" ‖ 0 ‖ id ‖ 0 ‖ expiry. Only a
//!   caller with a key can have one made (the channel bridge that knows
//!   the real identity, `POST /v1/livecodes/{id}/claims`,
//!   `POST /v1/campaigns/{id}/claims`).
//!
//! Comparisons are constant-time (`hmac`'s `verify_truncated_left`, `subtle`).
//!
//! **Legacy tokens** (`hex(identity).mac`, SHA-256 over secret ‖ purpose ‖
//! 0 ‖ identity, made before this scheme) are accepted for unsubscribe
//! links and invite codes until [`LEGACY_ACCEPTED_UNTIL`] (2027-07-01 UTC):
//! messages and posters already out there keep working; nothing new is
//! made in that form. Legacy content links still redirect but record no
//! view; legacy live-code `?identity=` links no longer reserve anything.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use siyu_console::accounts::hex;
use siyu_store::Store;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Settings prefix of the link id → identity map.
pub const LINK_ID_PREFIX: &str = "link_id/";
/// Legacy (identity-revealing) unsubscribe and invite tokens are accepted
/// before this instant (2027-07-01T00:00:00Z) and refused from then on.
pub const LEGACY_ACCEPTED_UNTIL: i64 = 1_814_400_000;
/// Bytes of a link id and of a mac (each 32 hex digits).
const ID_BYTES: usize = 16;
const MAC_BYTES: usize = 16;
/// Longest id a legacy token may carry (bytes).
const LEGACY_MAX_ID: usize = 256;

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn hmac(secret: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("hmac accepts keys of any length"),
    };
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            mac.update(&[0]);
        }
        mac.update(p);
    }
    mac
}

fn mac_hex(secret: &[u8], parts: &[&[u8]]) -> String {
    hex(&hmac(secret, parts).finalize().into_bytes()[..MAC_BYTES])
}

/// Whether `given` (hex) is the truncated mac of `parts`, in constant time.
fn mac_matches(secret: &[u8], parts: &[&[u8]], given: &str) -> bool {
    match unhex(given) {
        Some(bytes) if bytes.len() == MAC_BYTES => {
            hmac(secret, parts).verify_truncated_left(&bytes).is_ok()
        }
        _ => false,
    }
}

/// The opaque link id of an identity under this secret.
pub fn link_id(secret: &[u8], identity: &str) -> String {
    hex(&hmac(secret, &[b"link-id", identity.as_bytes()])
        .finalize()
        .into_bytes()[..ID_BYTES])
}

fn is_link_id(s: &str) -> bool {
    s.len() == 2 * ID_BYTES && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The link token of `identity` for `purpose` (the caller [`remember`]s
/// the identity so the token can be resolved).
pub fn sign(secret: &[u8], purpose: &str, identity: &str) -> String {
    let id = link_id(secret, identity);
    let mac = mac_hex(secret, &[purpose.as_bytes(), id.as_bytes()]);
    format!("{id}.{mac}")
}

/// The callback-token purpose of Tencent Cloud SMS's receipts and replies.
pub const SMS_TENCENT_CALLBACK: &str = "sms/tencent";

/// The opaque token in a channel's callback URL for a workspace
/// (`/callbacks/sms/tencent/{token}/…`): a remote that cannot sign its
/// requests (Tencent Cloud SMS's receipts and replies) proves it was
/// given the URL. The mac of `callback/<purpose>` ‖ 0 ‖ the workspace
/// name, 128 bits in hex: stable for the workspace, revealing nothing,
/// and changed by rotating the link secret.
pub fn callback_token(secret: &[u8], purpose: &str, workspace: &str) -> String {
    mac_hex(
        secret,
        &[
            format!("callback/{purpose}").as_bytes(),
            workspace.as_bytes(),
        ],
    )
}

/// Whether `token` is [`callback_token`] (constant time).
pub fn verify_callback_token(secret: &[u8], purpose: &str, workspace: &str, token: &str) -> bool {
    mac_matches(
        secret,
        &[
            format!("callback/{purpose}").as_bytes(),
            workspace.as_bytes(),
        ],
        token,
    )
}

/// The link id a valid token of this purpose names.
pub fn verify(secret: &[u8], purpose: &str, token: &str) -> Option<String> {
    let (id, mac) = token.split_once('.')?;
    (is_link_id(id) && mac_matches(secret, &[purpose.as_bytes(), id.as_bytes()], mac))
        .then(|| id.to_string())
}

/// Records `link_id/<id>` → identity (once per identity) and returns the id.
pub fn remember(
    store: &mut dyn Store,
    secret: &[u8],
    identity: &str,
) -> Result<String, siyu_store::StoreError> {
    let id = link_id(secret, identity);
    let key = format!("{LINK_ID_PREFIX}{id}");
    let known = store.get_setting(&key)?;
    if known.as_ref().and_then(|v| v.as_str()) != Some(identity) {
        store.put_setting(&key, Some(&serde_json::Value::String(identity.into())))?;
    }
    Ok(id)
}

/// [`remember`] for many identities with one write transaction (a mass
/// send's recipients: one commit per recipient would cost an fsync each).
pub fn remember_many(
    store: &mut dyn Store,
    secret: &[u8],
    identities: &[String],
) -> Result<(), siyu_store::StoreError> {
    let mut rows = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for identity in identities {
        let key = format!("{LINK_ID_PREFIX}{}", link_id(secret, identity));
        if !seen.insert(key.clone()) {
            continue;
        }
        let known = store.get_setting(&key)?;
        if known.as_ref().and_then(|v| v.as_str()) != Some(identity.as_str()) {
            rows.push((key, Some(serde_json::Value::String(identity.clone()))));
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    store.put_settings(&rows)
}

/// The identity a link id stands for, if it was remembered (and not erased).
pub fn identity_of(
    store: &mut dyn Store,
    id: &str,
) -> Result<Option<String>, siyu_store::StoreError> {
    if !is_link_id(id) {
        return Ok(None);
    }
    Ok(store
        .get_setting(&format!("{LINK_ID_PREFIX}{id}"))?
        .and_then(|v| v.as_str().map(str::to_string)))
}

/// Removes the link ids of erased identities: their links resolve to nothing.
pub fn forget(
    store: &mut dyn Store,
    secret: &[u8],
    identities: &[String],
) -> Result<(), siyu_store::StoreError> {
    let items: Vec<(String, Option<serde_json::Value>)> = identities
        .iter()
        .map(|i| (format!("{LINK_ID_PREFIX}{}", link_id(secret, i)), None))
        .collect();
    store.put_settings(&items)
}

/// The identity a link token of this purpose names: a current token
/// through the link id map, a legacy one (unsubscribe and invites only,
/// before [`LEGACY_ACCEPTED_UNTIL`]) by its own content.
pub fn resolve(
    store: &mut dyn Store,
    secret: &[u8],
    purpose: &str,
    token: &str,
    now: i64,
) -> Result<Option<String>, siyu_store::StoreError> {
    if let Some(id) = verify(secret, purpose, token) {
        return identity_of(store, &id);
    }
    let legacy_kind = purpose == "unsubscribe" || purpose.starts_with("invite/");
    Ok(if legacy_kind && now < LEGACY_ACCEPTED_UNTIL {
        verify_legacy(secret, purpose, token)
    } else {
        None
    })
}

/// A pre-2027 token `hex(identity).mac` (96-bit SHA-256 prefix mac).
fn verify_legacy(secret: &[u8], purpose: &str, token: &str) -> Option<String> {
    let (id_hex, mac) = token.split_once('.')?;
    if id_hex.len() > 2 * LEGACY_MAX_ID {
        return None;
    }
    let id = String::from_utf8(unhex(id_hex)?).ok()?;
    let expected = Sha256::new()
        .chain_update(secret)
        .chain_update(purpose.as_bytes())
        .chain_update([0u8])
        .chain_update(id.as_bytes())
        .finalize();
    let given = unhex(mac)?;
    bool::from(given.as_slice().ct_eq(&expected[..12])).then_some(id)
}

/// Why a claim token was refused.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("the claim token is not valid for {0}")]
    Invalid(String),
    #[error("the claim token expired; ask the channel for a new one")]
    Expired,
    #[error("the claimed identity was erased")]
    Unknown,
    #[error("reading the link id: {0}")]
    Store(#[from] siyu_store::StoreError),
}

impl From<ClaimError> for crate::error::ApiError {
    fn from(e: ClaimError) -> Self {
        match e {
            ClaimError::Store(e) => crate::error::ApiError::Internal(e.to_string()),
            refused => crate::error::ApiError::ClaimRequired(format!("claim: {refused}")),
        }
    }
}

/// How long a claim token is valid: the time between a scan (or the
/// channel's callback) and the page that uses it.
pub const CLAIM_TTL: i64 = 30 * 60;

/// Remembers `identity` and makes its claim token for `scope`, valid for
/// [`CLAIM_TTL`] from `now`; returns (token, expires at).
pub fn issue_claim(
    store: &mut dyn Store,
    secret: &[u8],
    scope: &str,
    identity: &str,
    now: i64,
) -> Result<(String, i64), siyu_store::StoreError> {
    remember(store, secret, identity)?;
    let expires_at = now + CLAIM_TTL;
    Ok((claim(secret, scope, identity, expires_at), expires_at))
}

/// The public link of live code `code` carrying `claim` (`/l/{code}?claim=`).
pub(crate) fn live_code_url(state: &crate::AppState, code: &str, claim: &str) -> String {
    format!(
        "{}/l/{}?claim={claim}",
        state.0.config.public_url.trim_end_matches('/'),
        crate::h5::path_segment(code)
    )
}

/// Where a signup hands `identity` on: live code `code`'s link with a seat
/// claim for them, valid [`CLAIM_TTL`] from `now` (they proved who they are,
/// so the live code may seat them).
pub(crate) fn seat_link(state: &crate::AppState, code: &str, identity: &str, now: i64) -> String {
    let claim = claim(
        &state.0.link_secret,
        &format!("livecode/{code}"),
        identity,
        now + CLAIM_TTL,
    );
    live_code_url(state, code, &claim)
}

/// A claim token: `identity` may claim a seat or a signup under `scope`
/// (`livecode/<id>`, `campaign/<id>`) until `expires_at`.
pub fn claim(secret: &[u8], scope: &str, identity: &str, expires_at: i64) -> String {
    let id = link_id(secret, identity);
    let exp = expires_at.to_string();
    let mac = mac_hex(
        secret,
        &[b"claim", scope.as_bytes(), id.as_bytes(), exp.as_bytes()],
    );
    format!("{id}.{exp}.{mac}")
}

/// The identity a claim token proves for `scope` at `now`.
pub fn verify_claim(
    store: &mut dyn Store,
    secret: &[u8],
    scope: &str,
    token: &str,
    now: i64,
) -> Result<String, ClaimError> {
    let invalid = || ClaimError::Invalid(scope.to_string());
    let mut parts = token.splitn(3, '.');
    let (Some(id), Some(exp), Some(mac)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid());
    };
    if !is_link_id(id)
        || !mac_matches(
            secret,
            &[b"claim", scope.as_bytes(), id.as_bytes(), exp.as_bytes()],
            mac,
        )
    {
        return Err(invalid());
    }
    let expires_at: i64 = exp.parse().map_err(|_| invalid())?;
    if now >= expires_at {
        return Err(ClaimError::Expired);
    }
    identity_of(store, id)?.ok_or(ClaimError::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_for_their_purpose_and_secret() {
        let t = sign(b"s", "unsubscribe", "wecom:王芳");
        let id = link_id(b"s", "wecom:王芳");
        assert_eq!(verify(b"s", "unsubscribe", &t).as_deref(), Some(&*id));
        assert_eq!(verify(b"s", "content", &t), None);
        assert_eq!(verify(b"other", "unsubscribe", &t), None);
        let mut forged = t.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == '0' { '1' } else { '0' });
        assert_eq!(verify(b"s", "unsubscribe", &forged), None);
        for junk in [
            "",
            ".",
            "zz.00",
            "0.0",
            "ab",
            &"00".repeat(300),
            &format!("{id}."),
        ] {
            assert_eq!(verify(b"s", "unsubscribe", junk), None, "{junk}");
        }
    }

    #[test]
    fn a_token_reveals_nothing_of_the_identity() {
        for identity in ["phone:13800138000", "wecom:wm_9f3a01", "wecom:王芳"] {
            let t = sign(b"secret", "unsubscribe", identity);
            let c = claim(b"secret", "livecode/spring", identity, 2_000_000_000);
            let id_hex = hex(identity.as_bytes());
            let bare = identity.split_once(':').unwrap().1;
            for token in [&t, &c] {
                assert!(
                    !token.contains(&id_hex[..8]),
                    "{token} holds hex of {identity}"
                );
                assert!(!token.contains(bare), "{token} holds {identity}");
            }
            // Same identity, same id; different identities, different ids.
            assert_eq!(t, sign(b"secret", "unsubscribe", identity));
        }
        assert_ne!(link_id(b"k", "wecom:a"), link_id(b"k", "wecom:b"));
        assert_ne!(link_id(b"k", "wecom:a"), link_id(b"k2", "wecom:a"));
    }

    fn temp_store(name: &str) -> (std::path::PathBuf, Box<dyn Store>) {
        let dir = std::env::temp_dir().join(format!("siyu-links-{name}-{}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        std::fs::create_dir_all(&dir).unwrap();
        let store = siyu_store::open_store(&dir, None).unwrap();
        (dir, store)
    }

    #[test]
    fn tokens_resolve_through_the_map_until_forgotten() {
        let (dir, mut store) = temp_store("map");
        let s = b"secret";
        let t = sign(s, "unsubscribe", "wecom:a");
        // Not remembered: a valid mac names nobody.
        assert_eq!(
            resolve(store.as_mut(), s, "unsubscribe", &t, 0).unwrap(),
            None
        );
        remember(store.as_mut(), s, "wecom:a").unwrap();
        assert_eq!(
            resolve(store.as_mut(), s, "unsubscribe", &t, 0)
                .unwrap()
                .as_deref(),
            Some("wecom:a")
        );
        assert_eq!(resolve(store.as_mut(), s, "content", &t, 0).unwrap(), None);
        // Claims: scope, expiry, forgery.
        let c = claim(s, "livecode/x", "wecom:a", 100);
        assert_eq!(
            verify_claim(store.as_mut(), s, "livecode/x", &c, 99).unwrap(),
            "wecom:a"
        );
        assert!(matches!(
            verify_claim(store.as_mut(), s, "livecode/x", &c, 100),
            Err(ClaimError::Expired)
        ));
        assert!(matches!(
            verify_claim(store.as_mut(), s, "livecode/y", &c, 0),
            Err(ClaimError::Invalid(_))
        ));
        let later = c.replace(".100.", ".999.");
        assert!(matches!(
            verify_claim(store.as_mut(), s, "livecode/x", &later, 0),
            Err(ClaimError::Invalid(_))
        ));
        let many = [
            "wecom:b".to_string(),
            "wecom:c".to_string(),
            "wecom:b".to_string(),
        ];
        remember_many(store.as_mut(), s, &many).unwrap();
        for who in &many {
            let t = sign(s, "content", who);
            assert_eq!(
                resolve(store.as_mut(), s, "content", &t, 0)
                    .unwrap()
                    .as_deref(),
                Some(who.as_str())
            );
        }
        forget(store.as_mut(), s, &["wecom:a".to_string()]).unwrap();
        assert_eq!(
            resolve(store.as_mut(), s, "unsubscribe", &t, 0).unwrap(),
            None
        );
        assert!(matches!(
            verify_claim(store.as_mut(), s, "livecode/x", &c, 0),
            Err(ClaimError::Unknown)
        ));
        drop(store);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn legacy_tokens_are_read_only_for_their_kinds_and_until_the_cutoff() {
        // The old format, made as the old code did.
        let old = |purpose: &str, id: &str| {
            let d = Sha256::new()
                .chain_update(b"s")
                .chain_update(purpose.as_bytes())
                .chain_update([0u8])
                .chain_update(id.as_bytes())
                .finalize();
            format!("{}.{}", hex(id.as_bytes()), hex(&d[..12]))
        };
        assert_eq!(
            verify_legacy(b"s", "unsubscribe", &old("unsubscribe", "wecom:a")).as_deref(),
            Some("wecom:a")
        );
        assert_eq!(
            verify_legacy(b"s", "content", &old("unsubscribe", "wecom:a")),
            None
        );
        let (dir, mut store) = temp_store("legacy");
        let before = LEGACY_ACCEPTED_UNTIL - 1;
        for (purpose, accepted) in [
            ("unsubscribe", true),
            ("invite/c1", true),
            ("content", false),
        ] {
            let t = old(purpose, "wecom:a");
            let got = resolve(store.as_mut(), b"s", purpose, &t, before).unwrap();
            assert_eq!(got.is_some(), accepted, "{purpose}");
            let late = resolve(store.as_mut(), b"s", purpose, &t, LEGACY_ACCEPTED_UNTIL).unwrap();
            assert_eq!(late, None, "{purpose} after the cutoff");
        }
        drop(store);
        std::fs::remove_dir_all(&dir).ok();
    }
}

/// The body of `POST …/claims`: the identity the channel vouches for.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClaimBody {
    /// The newcomer's identity the channel knows (`wecom:…`).
    identity: String,
}

/// `POST /v1/campaigns/{id}/claims` and `POST /v1/livecodes/{id}/claims`
/// alike: reads `{"identity"}` from `body`, checks it, and issues its
/// claim token for `scope` (`campaign/<id>`, `livecode/<id>`). The caller
/// has checked that the campaign or code exists. Returns (token, expires
/// at).
pub(crate) async fn claim_from_body(
    state: &crate::AppState,
    scope: String,
    body: &[u8],
) -> Result<(String, i64), crate::error::ApiError> {
    use crate::error::ApiError;
    let b: ClaimBody = crate::request::parse_json(body, "claim")?;
    siyu_domain::Identity::parse(&b.identity).map_err(|e| {
        ApiError::InvalidDefinition(format!(
            "identity: {e}; give `channel:id`, e.g. `wecom:wm_9f3a01`"
        ))
    })?;
    let secret = state.0.link_secret.clone();
    let at = crate::request::now();
    crate::request::with_store(state, move |store| {
        Ok(issue_claim(store, &secret, &scope, &b.identity, at)?)
    })
    .await
}
