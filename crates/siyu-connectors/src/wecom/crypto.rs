//! The callback crypto of WeCom and of WeChat Official Accounts' safe
//! mode (one scheme, that of Tencent's `WXBizMsgCrypt` samples): how a
//! callback is signed, decrypted and, for passive replies and tests,
//! encrypted. The two differ only in the receiver id every plaintext ends
//! with (WeCom: the corp id; an Official Account: its appid), so
//! [`CallbackCrypto`] takes the receiver id and the names of the settings
//! it came from ([`CallbackCrypto::for_receiver`]); this is the one place
//! the scheme is implemented.
//!
//! - signature: the hex SHA-1 of `token`, `timestamp`, `nonce` and the
//!   base64 ciphertext, sorted byte-wise and concatenated (`msg_signature`);
//! - key: `EncodingAESKey` (43 characters) + `=`, base64-decoded: 32 bytes,
//!   AES-256; the IV is the key's first 16 bytes; CBC mode;
//! - padding: PKCS#7 to a multiple of **32** bytes (not the AES block of
//!   16), so a pad byte may be anything from 1 to 32 — which is why the
//!   padding is handled here and the cipher runs without one;
//! - plaintext: 16 random bytes, the message length as 4 bytes big-endian,
//!   the message, then the receiver id (corp id or appid), which is checked.
//!
//! Checked against the vectors of Tencent's own samples (the tests below
//! name them). The crypto is CBC without a MAC, as WeCom defines it: what
//! authenticates a callback is the signature, so [`CallbackCrypto::open`]
//! checks it before decrypting anything.

use aes::Aes256;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use sha1::{Digest, Sha1};

use crate::config::ConfigError;

/// Length of an `EncodingAESKey` as the WeCom admin console shows it.
pub const ENCODING_AES_KEY_LEN: usize = 43;
/// WeCom pads to a multiple of this (PKCS#7 with a 32-byte "block").
const PAD_TO: usize = 32;
/// The random prefix of every plaintext.
const RANDOM_LEN: usize = 16;
/// The longest ciphertext (base64 text) [`CallbackCrypto::decrypt`] takes:
/// far above any callback (a few KiB), far below the server's body limit.
pub const MAX_ENCRYPTED_LEN: usize = 256 * 1024;

/// Why a callback did not open. The variants are kept apart because the
/// server answers them differently (a bad signature is 401; a message that
/// does not decrypt, or is for another corp, is 400).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum CryptoError {
    #[error("msg_signature does not match the SHA-1 of the sorted token, timestamp, nonce and message (check the Token configured in WeCom or the Official Account against `token` in [connectors.wecom] or [connectors.wechat])")]
    BadSignature,
    #[error("the encrypted message is not base64")]
    NotBase64,
    #[error("the encrypted message is longer than {MAX_ENCRYPTED_LEN} bytes")]
    TooLong,
    #[error("the encrypted message does not decrypt to WXBizMsgCrypt's layout ({0}); check the EncodingAESKey configured in WeCom or the Official Account against `encoding_aes_key` in [connectors.wecom] or [connectors.wechat]")]
    Malformed(&'static str),
    #[error("the message is for receiver `{got}`, not the configured {field} `{expected}`")]
    WrongReceiver {
        got: String,
        expected: String,
        /// The setting the receiver id comes from (`corp_id`, `app_id`).
        field: &'static str,
    },
}

/// The hex SHA-1 of the four values sorted byte-wise and concatenated:
/// WeCom's `msg_signature`.
pub fn signature(token: &str, timestamp: &str, nonce: &str, encrypted: &str) -> String {
    sorted_sha1(&mut [token, timestamp, nonce, encrypted])
}

/// The hex SHA-1 of `parts` sorted byte-wise and concatenated: the one
/// rule behind `msg_signature` (four parts) and an Official Account's
/// plaintext-mode `signature` (token, timestamp, nonce).
pub fn sorted_sha1(parts: &mut [&str]) -> String {
    parts.sort_unstable();
    let mut sha = Sha1::new();
    for p in parts.iter() {
        sha.update(p.as_bytes());
    }
    crate::http::hex(&sha.finalize())
}

/// Whether `given` (hex, any case, surrounding blanks ignored) is
/// `expected`, in constant time.
pub fn hex_matches(expected: &str, given: &str) -> bool {
    use subtle::ConstantTimeEq;
    let given = given.trim().to_ascii_lowercase();
    bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// Whether `msg_signature` is the signature of the rest (constant-time
/// compare; hex case ignored).
pub fn signature_matches(
    token: &str,
    timestamp: &str,
    nonce: &str,
    encrypted: &str,
    msg_signature: &str,
) -> bool {
    hex_matches(
        &signature(token, timestamp, nonce, encrypted),
        msg_signature,
    )
}

/// An `EncodingAESKey` as the AES-256 key it stands for: 43 characters of
/// the base64 alphabet that decode (with `=` appended) to 32 bytes.
/// `field` names the setting in the error.
pub fn aes_key(field: &str, encoding_aes_key: &str) -> Result<[u8; 32], ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        field: field.to_string(),
        reason,
    };
    let k = encoding_aes_key.trim();
    if k.len() != ENCODING_AES_KEY_LEN {
        return Err(invalid(format!(
            "is {} characters; an EncodingAESKey is exactly {ENCODING_AES_KEY_LEN} (copy it again from the admin console — WeCom: 接收事件服务器 → EncodingAESKey; Official Account: 设置与开发 → 基本配置 → 服务器配置 — or let it generate one)",
            k.chars().count()
        )));
    }
    if let Some(c) = k
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '+' || *c == '/'))
    {
        return Err(invalid(format!(
            "contains {c:?}; an EncodingAESKey has only letters, digits, `+` and `/`"
        )));
    }
    // WeCom's keys are not canonical base64: the last character carries
    // bits past the 32 bytes (Tencent's samples decode with libraries that
    // ignore them), so this decoder ignores them too.
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    let bytes = lenient
        .decode(format!("{k}="))
        .map_err(|e| invalid(format!("does not decode as base64 with `=` appended: {e}")))?;
    bytes
        .try_into()
        .map_err(|_| invalid("does not decode to 32 bytes".to_string()))
}

/// One receiver's callback settings (a WeCom app, an Official Account):
/// the token that signs, the AES key that encrypts, and the receiver id
/// (corp id, appid) every plaintext must end with.
#[derive(Clone)]
pub struct CallbackCrypto {
    token: String,
    key: [u8; 32],
    receiver_id: String,
    /// The setting the receiver id came from, for error messages.
    receiver_field: &'static str,
}

impl std::fmt::Debug for CallbackCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackCrypto")
            .field(self.receiver_field, &self.receiver_id)
            .finish_non_exhaustive()
    }
}

/// A message encrypted and signed for WeCom (a passive reply's parts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub encrypt: String,
    pub msg_signature: String,
}

impl CallbackCrypto {
    /// A WeCom app's: `encoding_aes_key` is checked here ([`aes_key`]);
    /// the fields are named as in `[connectors.wecom]`.
    pub fn new(token: &str, encoding_aes_key: &str, corp_id: &str) -> Result<Self, ConfigError> {
        Self::for_receiver("wecom", "corp_id", token, encoding_aes_key, corp_id)
    }

    /// Any receiver's: `section` and `receiver_field` name the settings in
    /// errors (`wechat`, `app_id` → `wechat.app_id`).
    pub fn for_receiver(
        section: &str,
        receiver_field: &'static str,
        token: &str,
        encoding_aes_key: &str,
        receiver_id: &str,
    ) -> Result<Self, ConfigError> {
        crate::config::required(&format!("{section}.token"), token)?;
        crate::config::required(&format!("{section}.encoding_aes_key"), encoding_aes_key)?;
        crate::config::required(&format!("{section}.{receiver_field}"), receiver_id)?;
        Ok(CallbackCrypto {
            token: token.trim().to_string(),
            key: aes_key(&format!("{section}.encoding_aes_key"), encoding_aes_key)?,
            receiver_id: receiver_id.trim().to_string(),
            receiver_field,
        })
    }

    /// The receiver id every plaintext must end with.
    pub fn receiver_id(&self) -> &str {
        &self.receiver_id
    }

    /// The token that signs (an Official Account's plaintext mode signs
    /// with it too).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Checks `msg_signature`, then decrypts: the callback's plaintext.
    pub fn open(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypted: &str,
    ) -> Result<String, CryptoError> {
        if !signature_matches(&self.token, timestamp, nonce, encrypted, msg_signature) {
            return Err(CryptoError::BadSignature);
        }
        self.decrypt(encrypted)
    }

    /// Decrypts a base64 ciphertext and checks its receiver id. Does not
    /// check any signature (see [`Self::open`]).
    pub fn decrypt(&self, encrypted: &str) -> Result<String, CryptoError> {
        if encrypted.len() > MAX_ENCRYPTED_LEN {
            return Err(CryptoError::TooLong);
        }
        let mut buf = BASE64
            .decode(encrypted.trim())
            .map_err(|_| CryptoError::NotBase64)?;
        if buf.is_empty() || buf.len() % PAD_TO != 0 {
            return Err(CryptoError::Malformed(
                "its length is not a multiple of 32 bytes",
            ));
        }
        let plain = cbc::Decryptor::<Aes256>::new(&self.key.into(), &self.iv().into())
            .decrypt_padded::<NoPadding>(&mut buf)
            .map_err(|_| CryptoError::Malformed("not whole AES blocks"))?;
        let pad = usize::from(*plain.last().unwrap_or(&0));
        if pad == 0 || pad > PAD_TO || plain[plain.len() - pad..].iter().any(|&b| b != pad as u8) {
            return Err(CryptoError::Malformed("bad PKCS#7 padding"));
        }
        let body = &plain[..plain.len() - pad];
        if body.len() < RANDOM_LEN + 4 {
            return Err(CryptoError::Malformed("shorter than its header"));
        }
        let len_bytes: [u8; 4] = body[RANDOM_LEN..RANDOM_LEN + 4]
            .try_into()
            .map_err(|_| CryptoError::Malformed("shorter than its header"))?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        let rest = &body[RANDOM_LEN + 4..];
        if len > rest.len() {
            return Err(CryptoError::Malformed(
                "its length field is past the message's end",
            ));
        }
        let (message, receiver) = rest.split_at(len);
        if receiver != self.receiver_id.as_bytes() {
            return Err(CryptoError::WrongReceiver {
                got: String::from_utf8_lossy(receiver).into_owned(),
                expected: self.receiver_id.clone(),
                field: self.receiver_field,
            });
        }
        String::from_utf8(message.to_vec()).map_err(|_| CryptoError::Malformed("not UTF-8"))
    }

    /// Encrypts `message` for this receiver with the given random prefix (the
    /// base64 ciphertext). [`Self::encrypt`] draws the prefix itself.
    pub fn encrypt_with(&self, message: &str, random: [u8; 16]) -> String {
        let mut buf = Vec::with_capacity(message.len() + self.receiver_id.len() + 2 * PAD_TO);
        buf.extend_from_slice(&random);
        buf.extend_from_slice(&(message.len() as u32).to_be_bytes());
        buf.extend_from_slice(message.as_bytes());
        buf.extend_from_slice(self.receiver_id.as_bytes());
        let pad = PAD_TO - buf.len() % PAD_TO;
        buf.resize(buf.len() + pad, pad as u8);
        let n = buf.len();
        // The buffer is whole blocks (a multiple of 32), so NoPadding
        // cannot fail.
        let sealed = cbc::Encryptor::<Aes256>::new(&self.key.into(), &self.iv().into())
            .encrypt_padded::<NoPadding>(&mut buf, n)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        BASE64.encode(sealed)
    }

    /// Encrypts `message` with 16 bytes from the OS generator.
    pub fn encrypt(&self, message: &str) -> Result<String, getrandom::Error> {
        let mut random = [0u8; RANDOM_LEN];
        getrandom::fill(&mut random)?;
        Ok(self.encrypt_with(message, random))
    }

    /// Encrypts and signs `message` (a passive reply, or a test's callback).
    pub fn seal(
        &self,
        message: &str,
        timestamp: &str,
        nonce: &str,
    ) -> Result<Sealed, getrandom::Error> {
        let encrypt = self.encrypt(message)?;
        Ok(Sealed {
            msg_signature: signature(&self.token, timestamp, nonce, &encrypt),
            encrypt,
        })
    }

    fn iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.key[..16]);
        iv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Tencent's WXBizMsgCrypt samples, set 1: the values of the callback
    // documentation's example (token QDG6eK, corp wx5823bf96d3bd56c7), in
    // the WeCom team's samples linked from the doc "加解密库下载与返回码"
    // (developer.work.weixin.qq.com/document/path/90968): repository
    // sbzhu/weworkapi_php, callback/Sample.php (examples one and two, and
    // the plaintext of example two in its comment), and
    // workweixin/weworkapi_cplusplus, Sample.cpp (the same values).
    const TOKEN: &str = "QDG6eK";
    const CORP: &str = "wx5823bf96d3bd56c7";
    const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
    // Example one: GET ?msg_signature=…&timestamp=…&nonce=…&echostr=…
    const VERIFY_SIGNATURE: &str = "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3";
    const VERIFY_TIMESTAMP: &str = "1409659589";
    const VERIFY_NONCE: &str = "263014780";
    const VERIFY_ECHOSTR: &str =
        "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==";
    /// What the echostr decrypts to (checked independently with
    /// `openssl enc -aes-256-cbc -d -nopad` and the same key and IV).
    const VERIFY_PLAIN: &str = "1616140317555161061";
    // Example two: POST ?msg_signature=…&timestamp=…&nonce=… with <Encrypt>.
    const POST_SIGNATURE: &str = "477715d11cdb4164915debcba66cb864d751f3e6";
    const POST_TIMESTAMP: &str = "1409659813";
    const POST_NONCE: &str = "1372623149";
    pub(crate) const POST_ENCRYPT: &str = "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==";
    /// Sample.php's comment under example two (lines joined by `\n`).
    const POST_PLAIN: &str = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n<FromUserName><![CDATA[mycreate]]></FromUserName>\n<CreateTime>1409659813</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[hello]]></Content>\n<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>";

    // Set 2, a second corp and key: sbzhu/weworkapi_python,
    // callback/Sample.py (examples one and two).
    const TOKEN2: &str = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo";
    const KEY2: &str = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt";
    const CORP2: &str = "ww1436e0e65a779aee";

    fn crypto() -> CallbackCrypto {
        CallbackCrypto::new(TOKEN, KEY, CORP).unwrap()
    }

    #[test]
    fn tencents_url_verification_example_verifies_and_decrypts() {
        assert_eq!(
            signature(TOKEN, VERIFY_TIMESTAMP, VERIFY_NONCE, VERIFY_ECHOSTR),
            VERIFY_SIGNATURE
        );
        let echo = crypto()
            .open(
                VERIFY_SIGNATURE,
                VERIFY_TIMESTAMP,
                VERIFY_NONCE,
                VERIFY_ECHOSTR,
            )
            .unwrap();
        assert_eq!(echo, VERIFY_PLAIN);
    }

    #[test]
    fn tencents_message_example_verifies_and_decrypts_to_the_documented_plaintext() {
        assert_eq!(
            signature(TOKEN, POST_TIMESTAMP, POST_NONCE, POST_ENCRYPT),
            POST_SIGNATURE
        );
        let plain = crypto()
            .open(POST_SIGNATURE, POST_TIMESTAMP, POST_NONCE, POST_ENCRYPT)
            .unwrap();
        assert_eq!(plain, POST_PLAIN);
    }

    #[test]
    fn tencents_second_sample_verifies_and_decrypts() {
        let c = CallbackCrypto::new(TOKEN2, KEY2, CORP2).unwrap();
        let echostr =
            "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==";
        assert_eq!(
            c.open(
                "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb",
                "1476416373",
                "47744683",
                echostr
            )
            .unwrap(),
            "1288432023552776189"
        );
        let encrypted = "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+";
        assert_eq!(
            c.open(
                "0c3914025cb4b4d68103f6bfc8db550f79dcf48e",
                "1476422779",
                "1597212914",
                encrypted
            )
            .unwrap(),
            "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName><CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content><MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>"
        );
    }

    /// Encrypting the documented plaintext with the random prefix the
    /// example's ciphertext carries gives back Tencent's exact ciphertext:
    /// the encryption is the sample's, byte for byte (not only our own
    /// inverse).
    #[test]
    fn encrypting_reproduces_tencents_ciphertext() {
        // The prefix is the first 16 bytes of the example's plaintext:
        // "0960688932c47ef1" (see the decryption with openssl).
        let random: [u8; 16] = *b"0960688932c47ef1";
        assert_eq!(crypto().encrypt_with(POST_PLAIN, random), POST_ENCRYPT);
        let random: [u8; 16] = *b"c41b64491c2468d0";
        assert_eq!(crypto().encrypt_with(VERIFY_PLAIN, random), VERIFY_ECHOSTR);
    }

    #[test]
    fn a_tampered_or_foreign_message_is_refused() {
        let c = crypto();
        let mut sig = VERIFY_SIGNATURE.to_string();
        sig.replace_range(0..1, "6");
        assert_eq!(
            c.open(&sig, VERIFY_TIMESTAMP, VERIFY_NONCE, VERIFY_ECHOSTR),
            Err(CryptoError::BadSignature)
        );
        // Upper-case hex is the same signature.
        assert!(c
            .open(
                &VERIFY_SIGNATURE.to_uppercase(),
                VERIFY_TIMESTAMP,
                VERIFY_NONCE,
                VERIFY_ECHOSTR
            )
            .is_ok());
        // Another corp with the same token and key: signature fine, the
        // receiver id is not ours.
        let other = CallbackCrypto::new(TOKEN, KEY, "ww0000000000000000").unwrap();
        assert_eq!(
            other.open(
                VERIFY_SIGNATURE,
                VERIFY_TIMESTAMP,
                VERIFY_NONCE,
                VERIFY_ECHOSTR
            ),
            Err(CryptoError::WrongReceiver {
                got: CORP.into(),
                expected: "ww0000000000000000".into(),
                field: "corp_id",
            })
        );
        // Another key: the padding or the layout does not survive.
        let wrong_key = CallbackCrypto::new(TOKEN, KEY2, CORP).unwrap();
        assert!(matches!(
            wrong_key.decrypt(POST_ENCRYPT),
            Err(CryptoError::Malformed(_))
        ));
        assert_eq!(c.decrypt("%%%"), Err(CryptoError::NotBase64));
        assert!(matches!(c.decrypt("AAAA"), Err(CryptoError::Malformed(_))));
        assert_eq!(
            c.decrypt(&"A".repeat(MAX_ENCRYPTED_LEN + 4)),
            Err(CryptoError::TooLong)
        );
    }

    #[test]
    fn sealed_messages_open_again() {
        let c = crypto();
        for message in ["", "x", &"中".repeat(300), POST_PLAIN] {
            let sealed = c.seal(message, "1700000000", "42").unwrap();
            assert_eq!(
                c.open(&sealed.msg_signature, "1700000000", "42", &sealed.encrypt)
                    .unwrap(),
                message
            );
            // Every ciphertext is whole 32-byte units.
            assert_eq!(BASE64.decode(&sealed.encrypt).unwrap().len() % 32, 0);
        }
    }

    #[test]
    fn an_encoding_aes_key_is_checked_with_its_field_named() {
        assert!(aes_key("wecom.encoding_aes_key", KEY).is_ok());
        for (bad, says) in [
            (&KEY[..42], "is 42 characters"),
            (
                "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2-",
                "contains '-'",
            ),
            (
                "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2=",
                "contains '='",
            ),
        ] {
            let e = aes_key("wecom.encoding_aes_key", bad)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("wecom.encoding_aes_key is invalid") && e.contains(says),
                "{e}"
            );
        }
    }
}
