//! The poster template (part of a campaign's JSON definition) and its
//! validation against the canvas; every error names the offending field.

use serde::{Deserialize, Serialize};

use crate::{PosterError, MAX_BACKGROUND_SIDE};

/// The smallest QR code a template may ask for, in pixels.
pub const MIN_QR_SIZE: u32 = 64;
/// The smallest canvas side when the template has no background.
pub const MIN_CANVAS_SIDE: u32 = 64;
/// Text sizes a template may ask for, in pixels.
pub const TEXT_SIZE_RANGE: std::ops::RangeInclusive<f32> = 8.0..=512.0;
/// The longest caption, in characters.
pub const MAX_CAPTION_CHARS: usize = 200;

/// Where and how a poster is laid out. Coordinates are pixels from the top
/// left of the canvas, which is the background's own size when the campaign
/// has a background image, else `width` × `height`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PosterTemplate {
    /// Canvas width when there is no background image.
    #[serde(default = "default_width")]
    pub width: u32,
    /// Canvas height when there is no background image.
    #[serde(default = "default_height")]
    pub height: u32,
    /// `#RRGGBB`: fills the canvas, and shows through a background's
    /// transparent pixels (posters are opaque).
    #[serde(default = "default_background_color")]
    pub background_color: String,
    /// The QR code of the invite link (a square, quiet zone included).
    pub qr: Rect,
    /// The inviter's name: one line, shrunk and then ellipsized to fit.
    pub name: TextBox,
    /// A fixed line of text such as "扫码加入，领取好礼".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<Caption>,
}

fn default_width() -> u32 {
    750
}
fn default_height() -> u32 {
    1334
}
fn default_background_color() -> String {
    "#FFF4E6".to_owned()
}

/// A square at (`x`, `y`) with side `size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub size: u32,
}

/// A one-line text box: its top left at (`x`, `y`), `max_width` wide and one
/// line of `size_px` high. Text wider than `max_width` is shrunk down to 60 %
/// of `size_px`, then cut with "…"; nothing is ever drawn outside the box's
/// columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TextBox {
    pub x: u32,
    pub y: u32,
    pub size_px: f32,
    /// `#RRGGBB`.
    pub color: String,
    pub max_width: u32,
    #[serde(default)]
    pub align: TextAlign,
}

/// Horizontal alignment of a line inside its box.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TextAlign {
    #[default]
    Left,
    Center,
    Right,
}

/// A fixed line of text and its box. In JSON the [`TextBox`] fields sit
/// beside `text` (`{"text": "…", "x": …, "y": …, "size_px": …, …}`), and
/// unknown fields are refused as everywhere else in the template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(from = "CaptionJson", into = "CaptionJson")]
pub struct Caption {
    pub text: String,
    pub text_box: TextBox,
}

/// The JSON shape of a [`Caption`]: flat, so that `deny_unknown_fields`
/// works (serde's `flatten` would silently drop a misspelt field).
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CaptionJson {
    text: String,
    x: u32,
    y: u32,
    size_px: f32,
    color: String,
    max_width: u32,
    #[serde(default)]
    align: TextAlign,
}

impl From<CaptionJson> for Caption {
    fn from(c: CaptionJson) -> Caption {
        let text_box = TextBox {
            x: c.x,
            y: c.y,
            size_px: c.size_px,
            color: c.color,
            max_width: c.max_width,
            align: c.align,
        };
        Caption {
            text: c.text,
            text_box,
        }
    }
}

impl From<Caption> for CaptionJson {
    fn from(c: Caption) -> CaptionJson {
        let b = c.text_box;
        CaptionJson {
            text: c.text,
            x: b.x,
            y: b.y,
            size_px: b.size_px,
            color: b.color,
            max_width: b.max_width,
            align: b.align,
        }
    }
}

/// Parses `#RRGGBB` (either case).
pub fn parse_color(s: &str) -> Option<[u8; 3]> {
    let hex = s.strip_prefix('#')?;
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    Some([channel(0)?, channel(2)?, channel(4)?])
}

/// The canvas size a template renders at: the background's own size when
/// there is one, else the template's `width` × `height`.
pub fn canvas_size(t: &PosterTemplate, background: Option<(u32, u32)>) -> (u32, u32) {
    background.unwrap_or((t.width, t.height))
}

/// Checks a template against its canvas (`background` is the size returned
/// by [`crate::validate_background`], if the campaign has one): every box
/// inside the canvas, the QR at least 64 px, text sizes sane, colours
/// `#RRGGBB`, text boxes clear of the QR. The error names the first bad field.
pub fn validate_template(
    t: &PosterTemplate,
    background: Option<(u32, u32)>,
) -> Result<(), PosterError> {
    if background.is_none() {
        let sides = MIN_CANVAS_SIDE..=MAX_BACKGROUND_SIDE;
        if !sides.contains(&t.width) {
            return Err(PosterError::field(
                "width",
                format!(
                    "must be between {} and {} px, got {}",
                    sides.start(),
                    sides.end(),
                    t.width
                ),
            ));
        }
        if !sides.contains(&t.height) {
            return Err(PosterError::field(
                "height",
                format!(
                    "must be between {} and {} px, got {}",
                    sides.start(),
                    sides.end(),
                    t.height
                ),
            ));
        }
    }
    let (width, height) = canvas_size(t, background);
    check_color("background_color", &t.background_color)?;

    let qr = t.qr;
    if qr.size < MIN_QR_SIZE {
        return Err(PosterError::field(
            "qr.size",
            format!("must be at least {MIN_QR_SIZE} px, got {}", qr.size),
        ));
    }
    check_span("qr.x", "qr.size", qr.x, qr.size, width, "width")?;
    check_span("qr.y", "qr.size", qr.y, qr.size, height, "height")?;

    check_text_box("name", &t.name, (width, height), qr)?;
    if let Some(caption) = &t.caption {
        if caption.text.trim().is_empty() {
            return Err(PosterError::field(
                "caption.text",
                "must not be empty (omit the caption instead)",
            ));
        }
        let chars = caption.text.chars().count();
        if chars > MAX_CAPTION_CHARS {
            return Err(PosterError::field(
                "caption.text",
                format!("must be at most {MAX_CAPTION_CHARS} characters, got {chars}"),
            ));
        }
        check_text_box("caption", &caption.text_box, (width, height), qr)?;
    }
    Ok(())
}

fn check_color(field: &str, value: &str) -> Result<[u8; 3], PosterError> {
    parse_color(value).ok_or_else(|| {
        PosterError::field(
            field,
            format!("must be a colour like \"#FFF4E6\", got {value:?}"),
        )
    })
}

/// `start + len` must stay within `limit` (the canvas `side`).
fn check_span(
    field: &str,
    len_field: &str,
    start: u32,
    len: u32,
    limit: u32,
    side: &str,
) -> Result<(), PosterError> {
    let end = u64::from(start) + u64::from(len);
    if end > u64::from(limit) {
        return Err(PosterError::field(
            field,
            format!("the box ends at {end} px ({field} + {len_field}), past the canvas {side} of {limit} px"),
        ));
    }
    Ok(())
}

fn check_text_box(
    prefix: &str,
    b: &TextBox,
    (width, height): (u32, u32),
    qr: Rect,
) -> Result<(), PosterError> {
    check_color(&format!("{prefix}.color"), &b.color)?;
    if !b.size_px.is_finite() || !TEXT_SIZE_RANGE.contains(&b.size_px) {
        return Err(PosterError::field(
            format!("{prefix}.size_px"),
            format!(
                "must be between {} and {} px, got {}",
                TEXT_SIZE_RANGE.start(),
                TEXT_SIZE_RANGE.end(),
                b.size_px
            ),
        ));
    }
    if b.max_width < 1 {
        return Err(PosterError::field(
            format!("{prefix}.max_width"),
            "must be at least 1 px",
        ));
    }
    check_span(
        &format!("{prefix}.x"),
        "max_width",
        b.x,
        b.max_width,
        width,
        "width",
    )?;
    let line_height = line_height(b.size_px);
    check_span(
        &format!("{prefix}.y"),
        "size_px",
        b.y,
        line_height,
        height,
        "height",
    )?;
    let overlaps = b.x < qr.x + qr.size
        && qr.x < b.x + b.max_width
        && b.y < qr.y + qr.size
        && qr.y < b.y + line_height;
    if overlaps {
        return Err(PosterError::field(
            prefix,
            "the text box overlaps the qr code, which would stop it from scanning",
        ));
    }
    Ok(())
}

/// The height of a text box: one line of `size_px`.
pub(crate) fn line_height(size_px: f32) -> u32 {
    // size_px is validated finite and ≤ 512 before this is used for layout.
    size_px.ceil() as u32
}
