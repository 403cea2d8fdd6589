//! An identity is `channel:id`: one handle of a person on one channel.
//!
//! Identities are the keys of the identity graph; a person is reachable by
//! every one of them, so they are validated once, here, and never again.
//!
//! The id part is Unicode (`user:王@例子.cn`, `user:42`): a brand's user ids
//! are whatever its systems use. Refused are only the characters that
//! break the `channel:id` form where identities travel: whitespace and
//! control characters (a token in logs, paths and CSV lines), `,` and `"`
//! (CSV fields). The channel part stays lowercase ASCII: it is a name
//! segments and reports compare.

use std::fmt;

/// Longest identity accepted, in bytes.
pub const MAX_IDENTITY_LEN: usize = 256;

/// A validated `channel:id` identity (channel: lowercase ASCII; id: Unicode
/// without whitespace, control characters, `,` or `"`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Identity(String);

/// Why a string is not an identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("identity is empty; write it as `channel:id`, e.g. `wecom:wm000123`")]
    Empty,
    #[error("identity `{0}` has no channel; write it as `channel:id`, e.g. `douyin:{0}`")]
    NoChannel(String),
    #[error("identity `{0}` has an empty id after the channel")]
    EmptyId(String),
    #[error("identity channel `{0}` must be lowercase ASCII letters, digits or `_`")]
    BadChannel(String),
    #[error("identity is longer than {MAX_IDENTITY_LEN} bytes")]
    TooLong,
    #[error("identity `{0}` contains whitespace, a comma, a double quote or a control character after the channel; those break the `channel:id` form (any other Unicode is accepted)")]
    BadByte(String),
}

impl Identity {
    /// Parses `channel:id`.
    pub fn parse(s: &str) -> Result<Self, IdentityError> {
        check(s)?;
        Ok(Identity(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The channel part, before the first `:`.
    pub fn channel(&self) -> &str {
        self.0.split_once(':').map(|(c, _)| c).unwrap_or("")
    }
}

/// Checks that `s` is a valid `channel:id` without allocating.
pub fn check(s: &str) -> Result<(), IdentityError> {
    if s.is_empty() {
        return Err(IdentityError::Empty);
    }
    if s.len() > MAX_IDENTITY_LEN {
        return Err(IdentityError::TooLong);
    }
    let Some((channel, id)) = s.split_once(':') else {
        return Err(IdentityError::NoChannel(s.to_string()));
    };
    if channel.is_empty() {
        return Err(IdentityError::NoChannel(s.to_string()));
    }
    if !channel
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(IdentityError::BadChannel(channel.to_string()));
    }
    if id.is_empty() {
        return Err(IdentityError::EmptyId(s.to_string()));
    }
    if id
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == '"')
    {
        return Err(IdentityError::BadByte(s.escape_debug().to_string()));
    }
    Ok(())
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_channel_colon_id() {
        let id = Identity::parse("wecom:wm000123").unwrap();
        assert_eq!(id.channel(), "wecom");
        assert_eq!(id.as_str(), "wecom:wm000123");
    }

    #[test]
    fn ids_are_unicode() {
        for s in ["user:王@例子.cn", "user:42", "anon:ñandú-🙂", "user:a:b"] {
            assert_eq!(Identity::parse(s).unwrap().as_str(), s);
        }
    }

    #[test]
    fn rejects_what_is_not_an_identity() {
        assert_eq!(Identity::parse(""), Err(IdentityError::Empty));
        assert!(matches!(
            Identity::parse("abc"),
            Err(IdentityError::NoChannel(_))
        ));
        assert!(matches!(
            Identity::parse(":abc"),
            Err(IdentityError::NoChannel(_))
        ));
        assert!(matches!(
            Identity::parse("wecom:"),
            Err(IdentityError::EmptyId(_))
        ));
        assert!(matches!(
            Identity::parse("WeCom:x"),
            Err(IdentityError::BadChannel(_))
        ));
        assert!(matches!(
            Identity::parse("wecom:a b"),
            Err(IdentityError::BadByte(_))
        ));
        assert!(matches!(
            Identity::parse("wecom:a,b"),
            Err(IdentityError::BadByte(_))
        ));
        assert!(matches!(
            Identity::parse("user:a\u{3000}b"),
            Err(IdentityError::BadByte(_))
        ));
        assert_eq!(
            Identity::parse(&"a:".repeat(200)),
            Err(IdentityError::TooLong)
        );
    }
}
