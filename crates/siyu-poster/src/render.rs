//! The [`Renderer`]: parses the font and decodes the background once (with
//! the caption already drawn on it), then renders one poster per inviter:
//! copy the base, draw the QR code and the name, encode the PNG.

use ab_glyph::FontVec;
use qrcode::{Color, EcLevel, QrCode};

use crate::template::{canvas_size, parse_color, PosterTemplate, TextBox};
use crate::text::{draw_line, fit_line, BoxPx, Line};
use crate::{background, validate_background, validate_template, PosterError};

/// The quiet zone around the QR code, in modules (the standard's minimum).
pub const QR_QUIET_ZONE_MODULES: u32 = 4;
/// The smallest module drawn, in pixels: below this phones struggle.
pub const MIN_QR_MODULE_PX: u32 = 2;

/// An opaque RGB canvas, row-major, 3 bytes per pixel.
#[derive(Debug, Clone)]
pub(crate) struct Canvas {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

impl Canvas {
    fn filled(width: u32, height: u32, color: [u8; 3]) -> Canvas {
        let pixels = color
            .iter()
            .copied()
            .cycle()
            .take(width as usize * height as usize * 3)
            .collect();
        Canvas {
            width,
            height,
            pixels,
        }
    }

    /// Fills the rectangle at (x, y), `w` × `h`, which lies inside the canvas.
    fn fill_rect(&mut self, x: u32, y: u32, w: u32, h: u32, color: [u8; 3]) {
        debug_assert!(x + w <= self.width && y + h <= self.height);
        for row in y..y + h {
            let start = (row as usize * self.width as usize + x as usize) * 3;
            for px in self.pixels[start..start + w as usize * 3].chunks_exact_mut(3) {
                px.copy_from_slice(&color);
            }
        }
    }
}

/// How the inviter's name is shown on the poster.
#[derive(Debug, Clone, PartialEq)]
pub struct NameLayout {
    /// The characters drawn: those the font has, cut with "…" when too long.
    pub text: String,
    /// The size it is drawn at (≤ the template's `name.size_px`).
    pub size_px: f32,
    /// Its advance width in pixels (≤ the template's `name.max_width`).
    pub width_px: f32,
    pub ellipsized: bool,
}

/// Renders a campaign's posters. Build it once per campaign (it validates
/// the template, parses the font and decodes the background) and share it:
/// it is `Send + Sync` and [`Renderer::render`] takes `&self`.
pub struct Renderer {
    template: PosterTemplate,
    font: FontVec,
    /// Background colour, background image and caption, ready to copy.
    base: Canvas,
    name_box: BoxPx,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("template", &self.template)
            .field("width", &self.base.width)
            .field("height", &self.base.height)
            .finish_non_exhaustive()
    }
}

impl Renderer {
    /// Validates `template` against the background (whose size, when given,
    /// wins over the template's `width` × `height`), parses `font` (a TTF,
    /// OTF, or the first face of a TTC collection) and pre-draws the base.
    pub fn new(
        template: PosterTemplate,
        background_png: Option<&[u8]>,
        font: &[u8],
    ) -> Result<Renderer, PosterError> {
        let background_size = background_png.map(validate_background).transpose()?;
        validate_template(&template, background_size)?;
        let font = FontVec::try_from_vec_and_index(font.to_vec(), 0)
            .map_err(|e| PosterError::InvalidFont(e.to_string().to_lowercase()))?;

        // validate_template checked every colour, so parse_color succeeds.
        let color = |field: &str, value: &str| {
            parse_color(value).ok_or_else(|| PosterError::field(field, "invalid colour"))
        };
        let background_color = color("background_color", &template.background_color)?;
        let (width, height) = canvas_size(&template, background_size);
        let mut base = match background_png {
            Some(png) => {
                let (w, h, pixels) = background::decode_rgb(png, background_color)?;
                debug_assert_eq!((w, h), (width, height));
                Canvas {
                    width: w,
                    height: h,
                    pixels,
                }
            }
            None => Canvas::filled(width, height, background_color),
        };
        let name_box = box_px(&template.name, color("name.color", &template.name.color)?);
        if let Some(caption) = &template.caption {
            let caption_box = box_px(
                &caption.text_box,
                color("caption.color", &caption.text_box.color)?,
            );
            let line = fit_line(&font, &caption.text, &caption_box);
            draw_line(&mut base, &font, &line, &caption_box);
        }
        Ok(Renderer {
            template,
            font,
            base,
            name_box,
        })
    }

    /// The poster's size in pixels (the background's when there is one).
    pub fn size(&self) -> (u32, u32) {
        (self.base.width, self.base.height)
    }

    pub fn template(&self) -> &PosterTemplate {
        &self.template
    }

    /// How `name` will be shown: which characters, at what size, how wide.
    pub fn layout_name(&self, name: &str) -> NameLayout {
        let line = self.fit_name(name);
        NameLayout {
            text: line.text,
            size_px: line.scale,
            width_px: line.width,
            ellipsized: line.ellipsized,
        }
    }

    fn fit_name(&self, name: &str) -> Line {
        fit_line(&self.font, name, &self.name_box)
    }

    /// Renders the poster for an inviter as an 8-bit RGB PNG. Any name
    /// renders (missing glyphs are dropped, long names shrink and are cut);
    /// the link fails with [`PosterError::InvalidLink`] when it is empty or
    /// does not fit the template's QR box at ≥ 2 px per module.
    pub fn render(&self, name: &str, link: &str) -> Result<Vec<u8>, PosterError> {
        let mut canvas = self.base.clone();
        draw_qr(&mut canvas, self.template.qr, link)?;
        let line = self.fit_name(name);
        draw_line(&mut canvas, &self.font, &line, &self.name_box);
        encode_png(&canvas)
    }
}

fn box_px(b: &TextBox, color: [u8; 3]) -> BoxPx {
    BoxPx {
        x: b.x,
        y: b.y,
        size: b.size_px,
        color,
        max_width: b.max_width,
        align: b.align,
    }
}

/// Draws `link` as a QR code (level M) centred in the square `qr`: white
/// background over the whole square (so the quiet zone is at least 4
/// modules), black modules of a whole number of pixels.
fn draw_qr(canvas: &mut Canvas, qr: crate::Rect, link: &str) -> Result<(), PosterError> {
    if link.is_empty() {
        return Err(PosterError::InvalidLink("must not be empty".into()));
    }
    let code = QrCode::with_error_correction_level(link.as_bytes(), EcLevel::M).map_err(|e| {
        PosterError::InvalidLink(format!(
            "{} bytes do not fit in a qr code ({e})",
            link.len()
        ))
    })?;
    let modules = code.width() as u32;
    let with_quiet_zone = modules + 2 * QR_QUIET_ZONE_MODULES;
    let module_px = qr.size / with_quiet_zone;
    if module_px < MIN_QR_MODULE_PX {
        return Err(PosterError::InvalidLink(format!(
            "{} bytes need a {with_quiet_zone}-module qr code, at least {} px with {MIN_QR_MODULE_PX} px per module, but qr.size is {} px: shorten the link or enlarge qr.size",
            link.len(),
            with_quiet_zone * MIN_QR_MODULE_PX,
            qr.size
        )));
    }
    canvas.fill_rect(qr.x, qr.y, qr.size, qr.size, [255, 255, 255]);
    let offset = (qr.size - modules * module_px) / 2;
    debug_assert!(offset >= QR_QUIET_ZONE_MODULES * module_px);
    for (i, color) in code.to_colors().into_iter().enumerate() {
        if color == Color::Dark {
            let (mx, my) = (i as u32 % modules, i as u32 / modules);
            canvas.fill_rect(
                qr.x + offset + mx * module_px,
                qr.y + offset + my * module_px,
                module_px,
                module_px,
                [0, 0, 0],
            );
        }
    }
    Ok(())
}

/// A QR code of `link` alone, as a `size` × `size` 8-bit RGB PNG: black
/// modules on white with the standard quiet zone, drawn exactly as on a
/// poster (level M, whole pixels per module). For pages and prints that
/// show the code without a poster; the same errors as [`Renderer::render`]
/// for a link that is empty or does not fit at ≥ 2 px per module.
pub fn qr_png(link: &str, size: u32) -> Result<Vec<u8>, PosterError> {
    let mut canvas = Canvas::filled(size, size, [255, 255, 255]);
    draw_qr(&mut canvas, crate::Rect { x: 0, y: 0, size }, link)?;
    encode_png(&canvas)
}

fn encode_png(canvas: &Canvas) -> Result<Vec<u8>, PosterError> {
    let mut out = Vec::with_capacity(canvas.pixels.len() / 4);
    let mut encoder = png::Encoder::new(&mut out, canvas.width, canvas.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let encode = |e: png::EncodingError| PosterError::Encode(e.to_string().to_lowercase());
    let mut writer = encoder.write_header().map_err(encode)?;
    writer.write_image_data(&canvas.pixels).map_err(encode)?;
    writer.finish().map_err(encode)?;
    Ok(out)
}
