//! Fission-campaign invite posters: the campaign's background, the inviter's
//! name and the QR code of their invite link, rendered to PNG.
//!
//! The crate is pure: it reads nothing and writes nothing except through
//! [`system_cjk_font`], the one function that touches the disk (the server
//! calls it once at start and hands the bytes to [`Renderer::new`]).
//!
//! - [`template`] — the [`PosterTemplate`] (JSON in the campaign definition)
//!   and [`validate_template`], whose errors name the field.
//! - [`background`] — [`validate_background`] (PNG only, ≤ 4096×4096, ≤ 8 MiB)
//!   and decoding onto the template's background colour.
//! - [`text`] — one-line text layout that shrinks, then ellipsizes, to fit a
//!   box; glyphs composited with their coverage as alpha.
//! - [`render`] — the [`Renderer`], which parses the font and decodes the
//!   background once and renders many posters.
//! - [`font`] — [`system_cjk_font`].
//!
//! May depend on: image, font and QR crates only (`png`, `ab_glyph`,
//! `qrcode`) and serde; no siyu crate (the growth core checks templates
//! with it, the server renders).

pub mod background;
pub mod font;
pub mod render;
pub mod template;
pub mod text;

pub use background::{validate_background, MAX_BACKGROUND_BYTES, MAX_BACKGROUND_SIDE};
pub use font::{system_cjk_font, SYSTEM_CJK_FONT_PATHS};
pub use render::{qr_png, NameLayout, Renderer};
pub use template::{validate_template, Caption, PosterTemplate, Rect, TextAlign, TextBox};

/// Everything that can go wrong building a renderer or rendering a poster.
/// Messages are lowercase and safe to show to the operator who uploaded the
/// template; [`PosterError::code`] is the stable code for the API's error table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PosterError {
    /// The background is not a PNG at all (JPEG, text, garbage) or is corrupt.
    #[error("background is not a png image: {0}")]
    NotAnImage(String),
    /// The background is a PNG but too large in bytes or pixels.
    #[error("background is too large: {0}")]
    BackgroundTooLarge(String),
    /// A template field is invalid; `field` is its path (`qr.size`, `name.color`).
    #[error("{field}: {message}")]
    InvalidTemplate { field: String, message: String },
    /// The font bytes are not a TrueType/OpenType font or collection.
    #[error("font is not a truetype/opentype font or font collection: {0}")]
    InvalidFont(String),
    /// The invite link cannot be drawn as a QR code in the template's QR box.
    #[error("link: {0}")]
    InvalidLink(String),
    /// Encoding the PNG failed (should not happen for a valid canvas).
    #[error("png encoding failed: {0}")]
    Encode(String),
}

impl PosterError {
    /// The stable snake_case code for the API's error table.
    pub fn code(&self) -> &'static str {
        match self {
            PosterError::NotAnImage(_) => "poster_background_not_an_image",
            PosterError::BackgroundTooLarge(_) => "poster_background_too_large",
            PosterError::InvalidTemplate { .. } => "invalid_poster_template",
            PosterError::InvalidFont(_) => "invalid_poster_font",
            PosterError::InvalidLink(_) => "invalid_poster_link",
            PosterError::Encode(_) => "poster_encoding_failed",
        }
    }

    pub(crate) fn field(field: impl Into<String>, message: impl Into<String>) -> PosterError {
        PosterError::InvalidTemplate {
            field: field.into(),
            message: message.into(),
        }
    }
}
