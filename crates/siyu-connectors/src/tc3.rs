//! Tencent Cloud API request signing, v3 (`TC3-HMAC-SHA256`), as the
//! "签名方法 v3" document defines it, for the JSON `POST` requests siyu
//! makes (Tencent Cloud SMS `SendSms`).
//!
//! 1. canonical request: `POST`, `/`, an empty query, the signed headers
//!    `content-type` and `host` (lower-case names, `name:value\n` each),
//!    their names `content-type;host`, and the hex SHA-256 of the body,
//!    joined by `\n`;
//! 2. string to sign: `TC3-HMAC-SHA256`, the request's Unix timestamp, the
//!    credential scope `<UTC date>/<service>/tc3_request` and the hex
//!    SHA-256 of the canonical request, joined by `\n`;
//! 3. key: HMAC-SHA256 chained from `"TC3" + SecretKey` over the date, the
//!    service and `tc3_request`; the signature is the hex HMAC of the
//!    string to sign under it;
//! 4. `Authorization: TC3-HMAC-SHA256 Credential=<SecretId>/<scope>,
//!    SignedHeaders=content-type;host, Signature=<signature>`.
//!
//! Why by hand: it is ~60 lines over `hmac`/`sha2` (already here), against
//! a whole SDK. The unit test reproduces the document's own worked example
//! (CVM `DescribeInstances`, timestamp 1551113065) byte for byte: the
//! canonical request, its hash, and the signature.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::http::hex;

pub const ALGORITHM: &str = "TC3-HMAC-SHA256";
/// The content type siyu sends and signs (as the document's example).
pub const CONTENT_TYPE: &str = "application/json; charset=utf-8";
const SIGNED_HEADERS: &str = "content-type;host";

fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hmac(key: &[u8], message: &str) -> Vec<u8> {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(message.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The UTC date (`YYYY-MM-DD`) of a Unix timestamp: the credential
/// scope's date, which must be the timestamp's.
pub fn utc_date(timestamp: i64) -> String {
    // Howard Hinnant's days → civil date.
    let z = timestamp.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Step 1: the canonical request of a JSON `POST /` to `host`.
pub fn canonical_request(host: &str, payload: &[u8]) -> String {
    format!(
        "POST\n/\n\ncontent-type:{CONTENT_TYPE}\nhost:{}\n\n{SIGNED_HEADERS}\n{}",
        host.trim().to_ascii_lowercase(),
        sha256_hex(payload)
    )
}

/// Step 2.
pub fn string_to_sign(timestamp: i64, service: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{timestamp}\n{}/{service}/tc3_request\n{}",
        utc_date(timestamp),
        sha256_hex(canonical_request.as_bytes())
    )
}

/// Step 3: the hex signature of `string_to_sign`.
pub fn signature(secret_key: &str, timestamp: i64, service: &str, string_to_sign: &str) -> String {
    let date = hmac(format!("TC3{secret_key}").as_bytes(), &utc_date(timestamp));
    let service = hmac(&date, service);
    let signing = hmac(&service, "tc3_request");
    hex(&hmac(&signing, string_to_sign))
}

/// Steps 1–4: the `Authorization` header of a JSON `POST /` to `host` of
/// `service` with body `payload` at `timestamp`.
pub fn authorization(
    secret_id: &str,
    secret_key: &str,
    service: &str,
    host: &str,
    payload: &[u8],
    timestamp: i64,
) -> String {
    let canonical = canonical_request(host, payload);
    let to_sign = string_to_sign(timestamp, service, &canonical);
    format!(
        "{ALGORITHM} Credential={secret_id}/{}/{service}/tc3_request, SignedHeaders={SIGNED_HEADERS}, Signature={}",
        utc_date(timestamp),
        signature(secret_key, timestamp, service, &to_sign)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // The worked example of Tencent Cloud's "签名方法 v3" document
    // (cloud.tencent.com/document/api/213/30654, the CVM
    // DescribeInstances request; its credentials are masked with `*` in
    // the document, and the masked strings are what it signs with).
    const SECRET_ID: &str = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******";
    const SECRET_KEY: &str = "Gu5t9xGARNpq86cd98joQYCN3*******";
    const TIMESTAMP: i64 = 1551113065;
    const PAYLOAD: &str =
        r#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
    const CANONICAL: &str = "POST
/

content-type:application/json; charset=utf-8
host:cvm.tencentcloudapi.com

content-type;host
35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064";
    const STRING_TO_SIGN: &str = "TC3-HMAC-SHA256
1551113065
2019-02-25/cvm/tc3_request
5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031";
    const SIGNATURE: &str = "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c";

    #[test]
    fn the_documents_example_is_reproduced_step_by_step() {
        let canonical = canonical_request("cvm.tencentcloudapi.com", PAYLOAD.as_bytes());
        assert_eq!(canonical, CANONICAL);
        let to_sign = string_to_sign(TIMESTAMP, "cvm", &canonical);
        assert_eq!(to_sign, STRING_TO_SIGN);
        assert_eq!(signature(SECRET_KEY, TIMESTAMP, "cvm", &to_sign), SIGNATURE);
        assert_eq!(
            authorization(
                SECRET_ID,
                SECRET_KEY,
                "cvm",
                "cvm.tencentcloudapi.com",
                PAYLOAD.as_bytes(),
                TIMESTAMP
            ),
            format!("TC3-HMAC-SHA256 Credential={SECRET_ID}/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host, Signature={SIGNATURE}")
        );
    }

    #[test]
    fn a_changed_byte_changes_the_signature() {
        let other = PAYLOAD.replace("1,", "2,");
        let a = authorization(
            SECRET_ID,
            SECRET_KEY,
            "cvm",
            "cvm.tencentcloudapi.com",
            other.as_bytes(),
            TIMESTAMP,
        );
        assert!(!a.ends_with(SIGNATURE));
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(TIMESTAMP), "2019-02-25");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(1_767_225_599), "2025-12-31");
        assert_eq!(utc_date(1_767_225_600), "2026-01-01");
    }
}
