//! Signed public links: unsubscribe links, tracked content links and
//! fission invite codes name a person without a lookup table and cannot
//! be forged. A token is `hex(id).mac` where `mac` is the first 96 bits of
//! SHA-256(secret ‖ purpose ‖ 0 ‖ id); the purpose keeps a token of one
//! kind from being replayed as another.

use sha2::{Digest, Sha256};

/// Longest id a token may carry (bytes).
const MAX_ID: usize = 256;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn mac(secret: &[u8], purpose: &str, id: &str) -> String {
    let d = Sha256::new()
        .chain_update(secret)
        .chain_update(purpose.as_bytes())
        .chain_update([0u8])
        .chain_update(id.as_bytes())
        .finalize();
    hex(&d[..12])
}

/// The token for `id` under `purpose`.
pub fn sign(secret: &[u8], purpose: &str, id: &str) -> String {
    format!("{}.{}", hex(id.as_bytes()), mac(secret, purpose, id))
}

/// The id a valid token of this purpose names (constant-time check).
pub fn verify(secret: &[u8], purpose: &str, token: &str) -> Option<String> {
    let (id_hex, _) = token.split_once('.')?;
    if id_hex.len() % 2 != 0 || id_hex.len() > 2 * MAX_ID {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..id_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(id_hex.get(i..i + 2)?, 16).ok())
        .collect();
    let id = String::from_utf8(bytes?).ok()?;
    let expected = sign(secret, purpose, &id);
    let same = expected.len() == token.len()
        && expected
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    same.then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_for_their_purpose_and_secret() {
        let t = sign(b"s", "unsubscribe", "wecom:王芳");
        assert_eq!(
            verify(b"s", "unsubscribe", &t).as_deref(),
            Some("wecom:王芳")
        );
        assert_eq!(verify(b"s", "content", &t), None);
        assert_eq!(verify(b"other", "unsubscribe", &t), None);
        let mut forged = t.clone();
        forged.pop();
        forged.push('0');
        assert!(verify(b"s", "unsubscribe", &forged).is_none() || forged == t);
        for junk in ["", ".", "zz.00", "0.0", "ab", &"00".repeat(300)] {
            assert_eq!(verify(b"s", "unsubscribe", junk), None, "{junk}");
        }
    }
}
