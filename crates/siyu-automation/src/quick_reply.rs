//! Quick replies (话术库): the answers operators paste into a conversation
//! a hundred times a day — price lists, shipping times, the group QR's
//! wording — kept once, shared by the team or personal to one operator,
//! grouped, found by keyword, and filled in for the person being answered
//! (`{{name}}`, `{{trait.city | default: "您"}}`: the template language of
//! [`crate::template`], so a quick reply and a template render alike).
//!
//! Pure: a definition, its checks (each fault with its field), and the
//! search match. Storage, use counts and rendering for a person are the
//! server's.

/// The settings a quick reply is saved under: `quick_reply/<id>`.
pub const SETTINGS_PREFIX: &str = "quick_reply/";
/// The store's atomic counter of a reply's uses: `quick_reply_uses/<id>`
/// (the inbox's sends and `/use` count into it).
pub const USES_PREFIX: &str = "quick_reply_uses/";

use serde::{Deserialize, Serialize};

use crate::template::{self, Compiled, Template};

/// At most this many characters of text (a WeCom text message takes 2048
/// bytes; a quick reply is meant to be read on a phone).
pub const MAX_TEXT_CHARS: usize = 2000;
pub const MAX_TITLE_CHARS: usize = 100;
pub const MAX_GROUP_CHARS: usize = 50;
pub const MAX_KEYWORDS: usize = 20;
pub const MAX_KEYWORD_CHARS: usize = 30;

/// A saved quick reply (`PUT /v1/quick-replies/{id}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuickReply {
    /// Optional in the body (the path names it).
    #[serde(default)]
    #[schemars(default)]
    pub id: String,
    /// What operators see in the list ("价格表", "发货时间").
    pub title: String,
    /// The reply; `{{name}}` and the other template variables are filled
    /// in for the person it is used for.
    pub text: String,
    /// The group it is listed under ("售前", "售后"); empty: ungrouped.
    #[serde(default)]
    pub group: String,
    /// The console login it belongs to (personal), or none (shared by
    /// the team).
    #[serde(default)]
    pub owner: Option<String>,
    /// Extra words it is found by (besides its title, text and group).
    #[serde(default)]
    pub keywords: Vec<String>,
}

/// A fault in a quick reply: the field and what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct QuickReplyError {
    pub field: String,
    pub message: String,
}

fn fault(field: impl Into<String>, message: impl Into<String>) -> QuickReplyError {
    QuickReplyError {
        field: field.into(),
        message: message.into(),
    }
}

fn bounded(field: &str, s: &str, max: usize, required: bool) -> Result<(), QuickReplyError> {
    let n = s.chars().count();
    if required && s.trim().is_empty() {
        return Err(fault(field, "must not be empty"));
    }
    if n > max {
        return Err(fault(
            field,
            format!("{n} characters; at most {max}: shorten it"),
        ));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(fault(field, "control characters are not allowed"));
    }
    Ok(())
}

impl QuickReply {
    /// Checks every field and compiles the text: every fault names its
    /// field (`text` with line and column for a template error).
    pub fn check(&self) -> Result<Compiled, QuickReplyError> {
        bounded("title", &self.title, MAX_TITLE_CHARS, true)?;
        bounded("text", &self.text, MAX_TEXT_CHARS, true)?;
        bounded("group", &self.group, MAX_GROUP_CHARS, false)?;
        if let Some(owner) = &self.owner {
            if !crate::journey::valid_name(owner) {
                return Err(fault(
                    "owner",
                    "a console login: 1–64 characters without '/', ':' or control characters (omit it for a shared reply)",
                ));
            }
        }
        if self.keywords.len() > MAX_KEYWORDS {
            return Err(fault(
                "keywords",
                format!("{} keywords; at most {MAX_KEYWORDS}", self.keywords.len()),
            ));
        }
        for (i, k) in self.keywords.iter().enumerate() {
            bounded(&format!("keywords[{i}]"), k, MAX_KEYWORD_CHARS, true)?;
        }
        template::compile(&self.as_template()).map_err(|e| {
            fault(
                "text",
                format!("line {} column {}: {}", e.line, e.column, e.message),
            )
        })
    }

    /// The text as a template (transactional: a reply the customer asked for).
    pub fn as_template(&self) -> Template {
        Template {
            name: self.id.clone(),
            body: self.text.clone(),
            subject: None,
            html: None,
            variants: Default::default(),
            class: crate::guard::MessageClass::Transactional,
            wechat_template: None,
        }
    }

    /// Whether `query` finds this reply: every blank-separated word of it
    /// occurs in the title, text, group or a keyword, ignoring case and
    /// full-width forms (ＶＩＰ finds VIP).
    pub fn matches(&self, query: &str) -> bool {
        let hay = fold(&format!(
            "{}\n{}\n{}\n{}",
            self.title,
            self.text,
            self.group,
            self.keywords.join("\n")
        ));
        fold(query)
            .split_whitespace()
            .all(|word| hay.contains(word))
    }

    /// Whether `login` may see it: shared ones, and their own.
    pub fn visible_to(&self, login: Option<&str>) -> bool {
        match (&self.owner, login) {
            (None, _) => true,
            (Some(owner), Some(login)) => owner == login,
            (Some(_), None) => false,
        }
    }
}

/// Lower case, full-width ASCII (Ｕ+FF01–FF5E) and the ideographic space
/// as their half-width forms.
fn fold(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            c => c,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(text: &str) -> QuickReply {
        QuickReply {
            id: "price".into(),
            title: "价格表".into(),
            text: text.into(),
            group: "售前".into(),
            owner: None,
            keywords: vec!["多少钱".into(), "VIP".into()],
        }
    }

    #[test]
    fn faults_name_their_field() {
        let mut r = reply("{{name}} 您好");
        assert!(r.check().is_ok());
        r.title = " ".into();
        assert_eq!(r.check().unwrap_err().field, "title");
        let mut r = reply(&"长".repeat(MAX_TEXT_CHARS + 1));
        assert_eq!(r.check().unwrap_err().field, "text");
        r.text = "{{ name ".into();
        let e = r.check().unwrap_err();
        assert_eq!(e.field, "text");
        assert!(e.message.starts_with("line 1 column"), "{e}");
        let mut r = reply("ok");
        r.keywords = vec!["".into()];
        assert_eq!(r.check().unwrap_err().field, "keywords[0]");
        r.keywords = vec!["k".into(); MAX_KEYWORDS + 1];
        assert_eq!(r.check().unwrap_err().field, "keywords");
        let mut r = reply("ok");
        r.owner = Some("a/b".into());
        assert_eq!(r.check().unwrap_err().field, "owner");
    }

    #[test]
    fn search_folds_case_and_full_width_and_wants_every_word() {
        let r = reply("亲，{{name}}，正价 199 元");
        assert!(r.matches("价格"));
        assert!(r.matches("ｖｉｐ"));
        assert!(r.matches("售前 199"));
        assert!(r.matches("多少钱"));
        assert!(!r.matches("售后"));
        assert!(!r.matches("199 售后"));
        assert!(r.matches(""));
    }

    #[test]
    fn personal_replies_are_their_owners() {
        let mut r = reply("x");
        assert!(r.visible_to(None) && r.visible_to(Some("wang")));
        r.owner = Some("wang".into());
        assert!(r.visible_to(Some("wang")));
        assert!(!r.visible_to(Some("li")) && !r.visible_to(None));
    }
}
