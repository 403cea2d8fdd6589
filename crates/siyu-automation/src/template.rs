//! Message templates: the text operators write once ("{{ name | default:
//! \"朋友\" }}，您的专属优惠…") and the executor renders per person and
//! channel.
//!
//! Why it exists: a template is checked when it is saved, not when the
//! 10,000th message goes out, so [`compile`] rejects every mistake with the
//! part, line and column (in chars, so Chinese text points at the right
//! place) and what to fix; rendering a [`Compiled`] template is then a walk
//! over pre-parsed segments into one `String`.
//!
//! Syntax:
//! - `{{ path }}` inserts a variable; `{{ path | default: "朋友" }}` inserts
//!   "朋友" when the variable is missing or empty. The default may be quoted
//!   with `"…"`, `'…'` or `“…”`; inside `"…"` and `'…'`, `\"`, `\'` and `\\`
//!   escape.
//! - `\{{` writes a literal `{{` (the only escape outside tags; any other
//!   backslash is literal text). A `}}` outside a tag is literal text, and
//!   so are extra braces before a tag: `{{{ name }}` is `{` and a variable.
//! - Paths: `name`, `phone`, `city`, `invite_link`, `unsubscribe_link`,
//!   `person.id`, and `trait.X`, `prop.X`, `campaign.X`, `content.X` where X
//!   is letters, digits, `_`, `-` or `.`.
//!
//! A channel variant replaces the default body (and the subject, when the
//! variant has one) for that channel.
//!
//! A WeChat Official Account template message (模板消息, `wechat_template`:
//! the account's `template_id`, its fields in `data`, each a text with
//! variables, and an optional `url`) is what a `wechat` send of the
//! template goes out as instead of a customer-service text: for
//! transactional notices, which WeChat lets reach a follower outside the
//! 48 hours after their last message.
//!
//! An e-mail may also have an HTML body (`html`, on the template or an
//! `email` variant): the e-mail connector sends it beside the text body as
//! `multipart/alternative`, so the text body stays what plain-text readers
//! and every other channel see. In the HTML body every inserted value is
//! HTML-escaped (a name like `<b>` stays text); the template's own markup
//! and defaults are written as given.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::guard::MessageClass;

/// A message template as operators save it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Template {
    /// Optional in `PUT /v1/templates/{name}` (the path names it).
    #[schemars(default)]
    pub name: String,
    pub body: String,
    #[serde(default)]
    pub subject: Option<String>,
    /// The HTML body of an e-mail, sent beside `body` (multipart/alternative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// Per-channel replacements, keyed by channel name ("wecom", "sms").
    #[serde(default)]
    pub variants: BTreeMap<String, Variant>,
    /// Defaults to marketing: the stricter rules apply unless a template is
    /// declared transactional.
    #[serde(default = "marketing")]
    pub class: MessageClass,
    /// A WeChat Official Account template message for `wechat` sends (see
    /// the module doc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wechat_template: Option<WeChatTemplate>,
}

/// A template message of the Official Account (模板消息 → 我的模板).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeChatTemplate {
    /// The template's id in the account.
    pub template_id: String,
    /// Its fields (`first`, `keyword1`, `remark` …), each a text with
    /// variables like `body`.
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    /// Where tapping the message leads (variables allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A template message rendered for one person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedWeChatTemplate {
    pub template_id: String,
    pub data: BTreeMap<String, String>,
    pub url: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct CompiledWeChatTemplate {
    template_id: String,
    data: BTreeMap<String, Text>,
    url: Option<Text>,
}

fn marketing() -> MessageClass {
    MessageClass::Marketing
}

/// The text of a template for one channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Variant {
    pub body: String,
    #[serde(default)]
    pub subject: Option<String>,
    /// The variant's HTML body (e-mail); the template's when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
}

/// Why a template does not compile: where, and what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{part}:{line}:{column}: {message}")]
pub struct TemplateError {
    /// "body", "subject", "html", "variants.wecom.body", "variants.wecom.subject",
    /// "variants.email.html", "name".
    pub part: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, counted in chars.
    pub column: usize,
    pub message: String,
}

/// Why a compiled template could not be rendered for one person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("missing variable \"{path}\" in {part} (no default): set it for this person or write {{{{ {path} | default: \"…\" }}}}")]
    MissingVariable { path: String, part: &'static str },
}

/// Where variable values come from (the person, the campaign, links).
pub trait Vars {
    /// The value of `path` ("name", "trait.city"), `None` when unknown.
    fn get(&self, path: &str) -> Option<Cow<'_, str>>;
}

impl Vars for BTreeMap<String, String> {
    fn get(&self, path: &str) -> Option<Cow<'_, str>> {
        BTreeMap::get(self, path).map(|v| Cow::Borrowed(v.as_str()))
    }
}

impl Vars for std::collections::HashMap<String, String> {
    fn get(&self, path: &str) -> Option<Cow<'_, str>> {
        std::collections::HashMap::get(self, path).map(|v| Cow::Borrowed(v.as_str()))
    }
}

impl<F: Fn(&str) -> Option<String>> Vars for F {
    fn get(&self, path: &str) -> Option<Cow<'_, str>> {
        self(path).map(Cow::Owned)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Text(Box<str>),
    Var {
        path: Box<str>,
        default: Option<Box<str>>,
    },
}

/// One piece of text (a body or a subject), pre-parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Text {
    segments: Vec<Segment>,
    /// Bytes of literal text, and number of variables: the output's size hint.
    literal_len: usize,
    vars: usize,
}

impl Text {
    fn render(&self, vars: &dyn Vars, part: &'static str) -> Result<String, RenderError> {
        let mut out = String::with_capacity(self.literal_len + 16 * self.vars);
        for segment in &self.segments {
            match segment {
                Segment::Text(text) => out.push_str(text),
                Segment::Var { path, default } => match (vars.get(path), default) {
                    (Some(value), Some(default)) if value.is_empty() => out.push_str(default),
                    (Some(value), _) => out.push_str(&value),
                    (None, Some(default)) => out.push_str(default),
                    (None, None) => {
                        return Err(RenderError::MissingVariable {
                            path: path.to_string(),
                            part,
                        })
                    }
                },
            }
        }
        Ok(out)
    }

    /// Back to source text that compiles to the same segments.
    fn print(&self) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Text(text) => out.push_str(&text.replace("{{", "\\{{")),
                Segment::Var {
                    path,
                    default: None,
                } => {
                    out.push_str("{{ ");
                    out.push_str(path);
                    out.push_str(" }}");
                }
                Segment::Var {
                    path,
                    default: Some(default),
                } => {
                    out.push_str("{{ ");
                    out.push_str(path);
                    out.push_str(" | default: \"");
                    out.push_str(&default.replace('\\', "\\\\").replace('"', "\\\""));
                    out.push_str("\" }}");
                }
            }
        }
        out
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Part {
    subject: Option<Text>,
    body: Text,
    html: Option<Text>,
}

/// Values inserted into an HTML body, escaped.
struct HtmlEscaped<'a>(&'a dyn Vars);

impl Vars for HtmlEscaped<'_> {
    fn get(&self, path: &str) -> Option<Cow<'_, str>> {
        let v = self.0.get(path)?;
        if !v.contains(['&', '<', '>', '"', '\'']) {
            return Some(v);
        }
        Some(Cow::Owned(escape_html(&v)))
    }
}

/// `s` safe as HTML text and as a quoted attribute value: the one escape
/// of e-mail bodies and of the pages a customer sees.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A template checked and pre-parsed for fast rendering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compiled {
    pub name: String,
    pub class: MessageClass,
    default: Part,
    variants: BTreeMap<String, Part>,
    wechat_template: Option<CompiledWeChatTemplate>,
}

/// A template rendered for one person on one channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub subject: Option<String>,
    pub body: String,
    /// The HTML body (e-mail), its inserted values escaped.
    pub html: Option<String>,
}

/// Checks and pre-parses `t`; the error says which part, where and what to fix.
pub fn compile(t: &Template) -> Result<Compiled, TemplateError> {
    if t.name.trim().is_empty() {
        return Err(TemplateError {
            part: "name".into(),
            line: 1,
            column: 1,
            message: "the template needs a name".into(),
        });
    }
    let subject = t
        .subject
        .as_deref()
        .map(|s| parse_text(s, "subject"))
        .transpose()?;
    let body = parse_text(&t.body, "body")?;
    let html = t
        .html
        .as_deref()
        .map(|s| parse_text(s, "html"))
        .transpose()?;
    let mut variants = BTreeMap::new();
    for (channel, variant) in &t.variants {
        let body = parse_text(&variant.body, &format!("variants.{channel}.body"))?;
        let subject = match &variant.subject {
            Some(s) => Some(parse_text(s, &format!("variants.{channel}.subject"))?),
            None => subject.clone(),
        };
        let html = match &variant.html {
            Some(s) => Some(parse_text(s, &format!("variants.{channel}.html"))?),
            None => html.clone(),
        };
        variants.insert(
            channel.clone(),
            Part {
                subject,
                body,
                html,
            },
        );
    }
    let wechat_template = match &t.wechat_template {
        None => None,
        Some(w) => {
            let id = w.template_id.trim();
            if id.is_empty() || id.len() > 128 {
                return Err(TemplateError {
                    part: "wechat_template.template_id".into(),
                    line: 1,
                    column: 1,
                    message: "the Official Account's template id (模板消息 → 我的模板), 1 to 128 characters".into(),
                });
            }
            let mut data = BTreeMap::new();
            for (key, value) in &w.data {
                data.insert(
                    key.clone(),
                    parse_text(value, &format!("wechat_template.data.{key}"))?,
                );
            }
            Some(CompiledWeChatTemplate {
                template_id: id.to_string(),
                data,
                url: w
                    .url
                    .as_deref()
                    .map(|u| parse_text(u, "wechat_template.url"))
                    .transpose()?,
            })
        }
    };
    Ok(Compiled {
        name: t.name.clone(),
        class: t.class,
        default: Part {
            subject,
            body,
            html,
        },
        variants,
        wechat_template,
    })
}

impl Compiled {
    /// Renders for `channel`: its variant when the template has one, else
    /// the default body and subject.
    pub fn render(&self, channel: &str, vars: &dyn Vars) -> Result<Rendered, RenderError> {
        let part = self.variants.get(channel).unwrap_or(&self.default);
        Ok(Rendered {
            subject: part
                .subject
                .as_ref()
                .map(|s| s.render(vars, "subject"))
                .transpose()?,
            body: part.body.render(vars, "body")?,
            html: part
                .html
                .as_ref()
                .map(|h| h.render(&HtmlEscaped(vars), "html"))
                .transpose()?,
        })
    }

    /// The template message for `wechat` sends, rendered, when the
    /// template has one.
    pub fn render_wechat_template(
        &self,
        vars: &dyn Vars,
    ) -> Option<Result<RenderedWeChatTemplate, RenderError>> {
        let w = self.wechat_template.as_ref()?;
        let rendered = (|| {
            let mut data = BTreeMap::new();
            for (key, text) in &w.data {
                data.insert(key.clone(), text.render(vars, "wechat_template.data")?);
            }
            Ok(RenderedWeChatTemplate {
                template_id: w.template_id.clone(),
                data,
                url: w
                    .url
                    .as_ref()
                    .map(|u| u.render(vars, "wechat_template.url"))
                    .transpose()?,
            })
        })();
        Some(rendered)
    }

    /// Every variable path the template uses, sorted, without duplicates.
    pub fn variables(&self) -> Vec<String> {
        let parts = std::iter::once(&self.default).chain(self.variants.values());
        let wechat = self
            .wechat_template
            .iter()
            .flat_map(|w| w.data.values().chain(w.url.iter()));
        let mut paths: Vec<String> = parts
            .flat_map(|p| {
                p.subject
                    .iter()
                    .chain(std::iter::once(&p.body))
                    .chain(p.html.iter())
            })
            .chain(wechat)
            .flat_map(|t| &t.segments)
            .filter_map(|s| match s {
                Segment::Var { path, .. } => Some(path.to_string()),
                Segment::Text(_) => None,
            })
            .collect();
        paths.sort();
        paths.dedup();
        paths
    }

    /// The template back as source, normalized (`{{ path }}` spacing,
    /// defaults in `"…"`); compiling it gives an equal `Compiled`.
    pub fn to_template(&self) -> Template {
        let variants = self
            .variants
            .iter()
            .map(|(channel, part)| {
                let variant = Variant {
                    body: part.body.print(),
                    subject: part.subject.as_ref().map(Text::print),
                    html: part.html.as_ref().map(Text::print),
                };
                (channel.clone(), variant)
            })
            .collect();
        Template {
            name: self.name.clone(),
            body: self.default.body.print(),
            subject: self.default.subject.as_ref().map(Text::print),
            html: self.default.html.as_ref().map(Text::print),
            variants,
            class: self.class,
            wechat_template: self.wechat_template.as_ref().map(|w| WeChatTemplate {
                template_id: w.template_id.clone(),
                data: w.data.iter().map(|(k, t)| (k.clone(), t.print())).collect(),
                url: w.url.as_ref().map(Text::print),
            }),
        }
    }
}

const PLAIN: [&str; 5] = ["name", "phone", "city", "invite_link", "unsubscribe_link"];
const NAMESPACES: [&str; 4] = ["trait", "prop", "campaign", "content"];

/// A position in one part, for errors.
struct Cursor<'a> {
    part: &'a str,
    src: &'a str,
}

impl Cursor<'_> {
    fn error(&self, byte: usize, message: impl Into<String>) -> TemplateError {
        let before = &self.src[..byte.min(self.src.len())];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        TemplateError {
            part: self.part.to_string(),
            line,
            column: before[line_start..].chars().count() + 1,
            message: message.into(),
        }
    }
}

fn parse_text(src: &str, part: &str) -> Result<Text, TemplateError> {
    let cur = Cursor { part, src };
    let mut segments = Vec::new();
    let mut text = String::new();
    let mut rest_start = 0;
    let mut i = 0;
    let bytes = src.as_bytes();
    while i < bytes.len() {
        if bytes[i] == b'\\' && bytes[i + 1..].starts_with(b"{{") {
            text.push_str(&src[rest_start..i]);
            text.push_str("{{");
            i += 3;
            rest_start = i;
        } else if bytes[i..].starts_with(b"{{{") {
            // Extra braces before a tag are text: "{{{ name }}" = "{" + tag.
            i += 1;
        } else if bytes[i..].starts_with(b"{{") {
            text.push_str(&src[rest_start..i]);
            if !text.is_empty() {
                segments.push(Segment::Text(std::mem::take(&mut text).into()));
            }
            let (segment, end) = parse_tag(&cur, i)?;
            segments.push(segment);
            i = end;
            rest_start = i;
        } else {
            i += 1;
        }
    }
    text.push_str(&src[rest_start..]);
    if !text.is_empty() {
        segments.push(Segment::Text(text.into()));
    }
    let literal_len = segments
        .iter()
        .map(|s| match s {
            Segment::Text(t) => t.len(),
            Segment::Var { .. } => 0,
        })
        .sum();
    let vars = segments
        .iter()
        .filter(|s| matches!(s, Segment::Var { .. }))
        .count();
    Ok(Text {
        segments,
        literal_len,
        vars,
    })
}

/// Parses the tag opening at byte `open` ("{{"); returns it and the byte after "}}".
fn parse_tag(cur: &Cursor, open: usize) -> Result<(Segment, usize), TemplateError> {
    let src = cur.src;
    let inner_start = open + 2;
    let mut i = inner_start;
    // The path: up to `|`, `}}`, or a quote-free end.
    let path_end = loop {
        match src[i..].chars().next() {
            None => return Err(cur.error(open, "unclosed {{: add }} after the variable")),
            Some('|') => break i,
            Some('}') if src[i..].starts_with("}}") => break i,
            Some('{') if src[i..].starts_with("{{") => {
                return Err(cur.error(open, "unclosed {{: add }} before the next {{"))
            }
            Some(c) => i += c.len_utf8(),
        }
    };
    let raw_path = &src[inner_start..path_end];
    let path = raw_path.trim();
    let path_at = inner_start + (raw_path.len() - raw_path.trim_start().len());
    check_path(cur, path, if path.is_empty() { open } else { path_at })?;
    let mut default = None;
    if src[i..].starts_with('|') {
        i += 1;
        let (value, end) = parse_filter(cur, i)?;
        default = Some(value.into_boxed_str());
        i = end;
        i += src[i..].len() - src[i..].trim_start().len();
        if !src[i..].starts_with("}}") {
            return Err(match src[i..].chars().next() {
                None => cur.error(open, "unclosed {{: add }} after the default"),
                Some('|') => {
                    cur.error(i, "only one filter is allowed: {{ path | default: \"…\" }}")
                }
                Some(_) => cur.error(i, "expected }} after the default's closing quote"),
            });
        }
    }
    Ok((
        Segment::Var {
            path: path.into(),
            default,
        },
        i + 2,
    ))
}

fn check_path(cur: &Cursor, path: &str, at: usize) -> Result<(), TemplateError> {
    if path.is_empty() {
        return Err(cur.error(
            at,
            "empty variable: write a name between {{ and }}, e.g. {{ name }}",
        ));
    }
    if path.chars().any(char::is_whitespace) {
        return Err(cur.error(
            at,
            format!("bad variable \"{path}\": a variable has no spaces (filters go after |)"),
        ));
    }
    let known = "use name, phone, city, invite_link, unsubscribe_link, person.id, trait.X, prop.X, campaign.X or content.X";
    if PLAIN.contains(&path) || path == "person.id" {
        return Ok(());
    }
    let Some((namespace, key)) = path.split_once('.') else {
        return Err(cur.error(at, format!("unknown variable \"{path}\": {known}")));
    };
    if namespace == "person" {
        return Err(cur.error(at, format!("unknown variable \"{path}\": the person namespace has only person.id; for other fields use trait.X or prop.X")));
    }
    if !NAMESPACES.contains(&namespace) {
        return Err(cur.error(
            at,
            format!("unknown variable namespace \"{namespace}\": {known}"),
        ));
    }
    let valid_key = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '.');
    if key.is_empty() || key.starts_with('.') || key.ends_with('.') || !key.chars().all(valid_key) {
        return Err(cur.error(
            at,
            format!("bad variable \"{path}\": after \"{namespace}.\" write a name of letters, digits, _, - or ."),
        ));
    }
    Ok(())
}

/// Parses ` default: "…"` starting at byte `at` (just after `|`); returns
/// the unescaped value and the byte after the closing quote.
fn parse_filter(cur: &Cursor, at: usize) -> Result<(String, usize), TemplateError> {
    let src = cur.src;
    let mut i = at + (src[at..].len() - src[at..].trim_start().len());
    let name_len = src[i..]
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(src.len() - i);
    let name = &src[i..i + name_len];
    if name != "default" {
        let shown = if name.is_empty() { "(nothing)" } else { name };
        return Err(cur.error(
            i,
            format!("bad filter {shown}: the only filter is default, e.g. {{{{ name | default: \"朋友\" }}}}"),
        ));
    }
    i += name_len;
    i += src[i..].len() - src[i..].trim_start().len();
    if !src[i..].starts_with(':') {
        return Err(cur.error(
            i,
            "bad filter: write default: followed by a quoted value, e.g. default: \"朋友\"",
        ));
    }
    i += 1;
    i += src[i..].len() - src[i..].trim_start().len();
    let quote_at = i;
    let (close, escapes) = match src[i..].chars().next() {
        Some('"') => ('"', true),
        Some('\'') => ('\'', true),
        Some('“') => ('”', false),
        _ => {
            return Err(cur.error(i, "the default needs quotes: default: \"朋友\""));
        }
    };
    i += src[i..].chars().next().map_or(1, char::len_utf8);
    let mut value = String::new();
    let mut chars = src[i..].char_indices();
    while let Some((offset, c)) = chars.next() {
        if c == close {
            return Ok((value, i + offset + c.len_utf8()));
        }
        if escapes && c == '\\' {
            match chars.next() {
                Some((_, e)) if e == close || e == '\\' => value.push(e),
                Some((_, e)) => {
                    value.push('\\');
                    value.push(e);
                }
                None => break,
            }
            continue;
        }
        value.push(c);
    }
    Err(cur.error(
        quote_at,
        format!("unclosed quote: end the default with {close}"),
    ))
}
