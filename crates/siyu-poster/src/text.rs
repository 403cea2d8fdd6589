//! One line of text in a box: laid out with the font's advances and kerning,
//! shrunk (down to [`MIN_SHRINK`] of its size) and then cut with "…" to fit
//! the box's width, and drawn with each pixel's glyph coverage as alpha.
//!
//! Characters the font has no glyph for, and control characters, are
//! dropped: they render as nothing rather than as a box or a panic.

use ab_glyph::{point, Font, FontVec, GlyphId, PxScale, ScaleFont};

use crate::background::blend;
use crate::render::Canvas;
use crate::template::TextAlign;

/// A line too wide for its box is shrunk down to this fraction of its size
/// before it is ellipsized.
pub const MIN_SHRINK: f32 = 0.6;
/// Characters beyond this many are never laid out (they could not fit a box
/// on a ≤ 4096 px canvas at ≥ 4.8 px anyway; this bounds the work per poster).
pub const MAX_LAID_OUT_CHARS: usize = 1024;

const ELLIPSIS: char = '…';

/// A validated text box in pixels.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BoxPx {
    pub x: u32,
    pub y: u32,
    /// The line height: the font is scaled so ascent − descent = `size`.
    pub size: f32,
    pub color: [u8; 3],
    pub max_width: u32,
    pub align: TextAlign,
}

/// A line laid out to fit its box.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    /// What is shown: the characters that have glyphs, maybe cut with "…".
    pub text: String,
    /// Glyphs and their x offsets from the start of the line.
    glyphs: Vec<(GlyphId, f32)>,
    pub scale: f32,
    /// Advance width of the whole line, ≤ the box's `max_width`.
    pub width: f32,
    pub ellipsized: bool,
}

/// Lays `text` out to fit `b.max_width`: as is if it fits, else shrunk
/// (not below [`MIN_SHRINK`] × size), else at the smallest size cut to the
/// longest prefix that fits followed by "…".
pub(crate) fn fit_line(font: &FontVec, text: &str, b: &BoxPx) -> Line {
    let chars: Vec<(char, GlyphId)> = text
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| (c, font.glyph_id(c)))
        .filter(|&(_, id)| id != GlyphId(0))
        .take(MAX_LAID_OUT_CHARS)
        .collect();
    let max = b.max_width as f32;

    let (carets, width) = measure(font, b.size, chars.iter().map(|&(_, id)| id));
    if width <= max {
        return line(&chars, carets, b.size, width);
    }
    // Advances and kerning scale linearly (no hinting), so the size that
    // fits is proportional; re-measure to guard against rounding.
    let min_size = b.size * MIN_SHRINK;
    let mut size = b.size * (max / width) * 0.999;
    while size >= min_size {
        let (carets, width) = measure(font, size, chars.iter().map(|&(_, id)| id));
        if width <= max {
            return line(&chars, carets, size, width);
        }
        size *= 0.98;
    }

    // Ellipsize at the smallest size: the longest prefix whose caret plus
    // the ellipsis fits.
    let size = min_size;
    let (ellipsis, ellipsis_ids) = if font.glyph_id(ELLIPSIS) != GlyphId(0) {
        (ELLIPSIS.to_string(), vec![font.glyph_id(ELLIPSIS)])
    } else if font.glyph_id('.') != GlyphId(0) {
        ("...".to_owned(), vec![font.glyph_id('.'); 3])
    } else {
        (String::new(), Vec::new())
    };
    let (_, ellipsis_width) = measure(font, size, ellipsis_ids.iter().copied());
    let (carets, _) = measure(font, size, chars.iter().map(|&(_, id)| id));
    // carets[k] is where glyph k starts, i.e. the width of the first k glyphs.
    let mut keep = (0..chars.len())
        .rev()
        .find(|&k| carets[k] + ellipsis_width <= max)
        .unwrap_or(0);
    loop {
        // No dangling space before the ellipsis.
        while keep > 0 && chars[keep - 1].0.is_whitespace() {
            keep -= 1;
        }
        let shown: Vec<(char, GlyphId)> = chars[..keep]
            .iter()
            .copied()
            .chain(ellipsis.chars().zip(ellipsis_ids.iter().copied()))
            .collect();
        // Kerning against the ellipsis can add a little: re-measure.
        let (carets, width) = measure(font, size, shown.iter().map(|&(_, id)| id));
        if width <= max {
            return Line {
                ellipsized: true,
                ..line(&shown, carets, size, width)
            };
        }
        if keep == 0 {
            // Not even the ellipsis fits: show nothing.
            return line(&[], Vec::new(), size, 0.0);
        }
        keep -= 1;
    }
}

fn line(chars: &[(char, GlyphId)], carets: Vec<f32>, size: f32, width: f32) -> Line {
    Line {
        text: chars.iter().map(|&(c, _)| c).collect(),
        glyphs: chars.iter().map(|&(_, id)| id).zip(carets).collect(),
        scale: size,
        width,
        ellipsized: false,
    }
}

/// The start of each glyph (with kerning) and the total advance width.
fn measure(font: &FontVec, size: f32, ids: impl Iterator<Item = GlyphId>) -> (Vec<f32>, f32) {
    let sf = font.as_scaled(PxScale::from(size));
    let mut carets = Vec::new();
    let mut caret = 0.0f32;
    let mut prev: Option<GlyphId> = None;
    for id in ids {
        if let Some(p) = prev {
            caret += sf.kern(p, id);
        }
        carets.push(caret);
        caret += sf.h_advance(id);
        prev = Some(id);
    }
    (carets, caret.max(0.0))
}

/// Draws `line` into its box: aligned horizontally, centred vertically in
/// the box's nominal line height, never outside the box's columns.
pub(crate) fn draw_line(canvas: &mut Canvas, font: &FontVec, line: &Line, b: &BoxPx) {
    let scale = PxScale::from(line.scale);
    let sf = font.as_scaled(scale);
    let slack = (b.max_width as f32 - line.width).max(0.0);
    let x0 = b.x as f32
        + match b.align {
            TextAlign::Left => 0.0,
            TextAlign::Center => slack / 2.0,
            TextAlign::Right => slack,
        };
    let baseline = b.y as f32 + (b.size - (sf.ascent() - sf.descent())) / 2.0 + sf.ascent();
    let clip_x = (b.x as i64, i64::from(b.x) + i64::from(b.max_width));
    let (w, h) = (i64::from(canvas.width), i64::from(canvas.height));
    for &(id, dx) in &line.glyphs {
        let glyph = id.with_scale_and_position(scale, point(x0 + dx, baseline));
        let Some(outlined) = font.outline_glyph(glyph) else {
            continue;
        };
        let bounds = outlined.px_bounds();
        let (bx, by) = (bounds.min.x as i64, bounds.min.y as i64);
        outlined.draw(|gx, gy, coverage| {
            let (px, py) = (bx + i64::from(gx), by + i64::from(gy));
            if px < clip_x.0 || px >= clip_x.1.min(w) || py < 0 || py >= h {
                return;
            }
            let alpha = (coverage.clamp(0.0, 1.0) * 255.0 + 0.5) as u8;
            if alpha == 0 {
                return;
            }
            let i = (py as usize * canvas.width as usize + px as usize) * 3;
            for (d, c) in canvas.pixels[i..i + 3].iter_mut().zip(b.color) {
                *d = blend(*d, c, alpha);
            }
        });
    }
}
