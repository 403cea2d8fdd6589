//! The campaign's background image: PNG only, checked once when the template
//! is uploaded ([`validate_background`]) and decoded once per [`crate::Renderer`].

use std::io::Cursor;

use crate::PosterError;

/// The largest background accepted, in bytes (8 MiB).
pub const MAX_BACKGROUND_BYTES: usize = 8 * 1024 * 1024;
/// The largest background side accepted, in pixels.
pub const MAX_BACKGROUND_SIDE: u32 = 4096;

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
/// The decoder's allocation budget: the sides are checked first, so this is
/// only a guard against a decoder bug, not the effective limit.
const DECODER_BYTE_LIMIT: usize = 256 * 1024 * 1024;

/// Checks that `png` is a PNG background a poster can use and returns its
/// size (width, height). Rejects, with a message saying what was uploaded:
/// anything that is not a PNG (a JPEG, GIF, WebP, text, garbage), a corrupt
/// or truncated PNG (every row is decoded and every chunk CRC checked), more
/// than 8 MiB, or more than 4096 px on a side.
pub fn validate_background(png: &[u8]) -> Result<(u32, u32), PosterError> {
    let mut reader = open(png)?;
    let (width, height) = (reader.info().width, reader.info().height);
    // Decode every row (no full-image buffer) so corruption is caught now,
    // at upload, rather than when the first poster is requested.
    loop {
        match reader.next_row() {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => return Err(corrupt(e)),
        }
    }
    Ok((width, height))
}

/// Decodes a background into RGB, composited over `under` where it is not
/// opaque. Returns (width, height, pixels).
pub(crate) fn decode_rgb(png: &[u8], under: [u8; 3]) -> Result<(u32, u32, Vec<u8>), PosterError> {
    let mut reader = open(png)?;
    let (width, height) = (reader.info().width, reader.info().height);
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| PosterError::BackgroundTooLarge("image too large to decode".into()))?;
    let mut buf = vec![0u8; size];
    let frame = reader.next_frame(&mut buf).map_err(corrupt)?;
    let samples = frame.color_type.samples();
    let stride = frame.line_size;
    let mut rgb = Vec::with_capacity(width as usize * height as usize * 3);
    for row in buf.chunks_exact(stride).take(height as usize) {
        for px in row[..width as usize * samples].chunks_exact(samples) {
            let (color, alpha) = match *px {
                [g] => ([g, g, g], 255),
                [g, a] => ([g, g, g], a),
                [r, g, b] => ([r, g, b], 255),
                [r, g, b, a] => ([r, g, b], a),
                // `normalize_to_color8` yields 1 to 4 samples of 8 bits.
                _ => return Err(PosterError::NotAnImage("unexpected pixel format".into())),
            };
            for (c, u) in color.into_iter().zip(under) {
                rgb.push(blend(u, c, alpha));
            }
        }
    }
    Ok((width, height, rgb))
}

/// `dst` moved towards `src` by `alpha`/255.
#[inline]
pub(crate) fn blend(dst: u8, src: u8, alpha: u8) -> u8 {
    let a = u32::from(alpha);
    ((u32::from(src) * a + u32::from(dst) * (255 - a) + 127) / 255) as u8
}

/// Sniffs, checks the byte size and the header, and returns a reader
/// positioned at the image data, set to produce 8-bit gray/RGB(A).
fn open(png: &[u8]) -> Result<png::Reader<Cursor<&[u8]>>, PosterError> {
    if png.len() > MAX_BACKGROUND_BYTES {
        return Err(PosterError::BackgroundTooLarge(format!(
            "{} bytes; the limit is {} MiB",
            png.len(),
            MAX_BACKGROUND_BYTES / (1024 * 1024)
        )));
    }
    if !png.starts_with(PNG_SIGNATURE) {
        return Err(PosterError::NotAnImage(format!(
            "{}; upload a png",
            sniff(png)
        )));
    }
    let mut decoder = png::Decoder::new_with_limits(
        Cursor::new(png),
        png::Limits {
            bytes: DECODER_BYTE_LIMIT,
        },
    );
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let reader = decoder.read_info().map_err(corrupt)?;
    let (width, height) = (reader.info().width, reader.info().height);
    if width > MAX_BACKGROUND_SIDE || height > MAX_BACKGROUND_SIDE {
        return Err(PosterError::BackgroundTooLarge(format!(
            "{width}×{height} px; the limit is {MAX_BACKGROUND_SIDE}×{MAX_BACKGROUND_SIDE}"
        )));
    }
    Ok(reader)
}

fn corrupt(e: png::DecodingError) -> PosterError {
    match e {
        png::DecodingError::LimitsExceeded => {
            PosterError::BackgroundTooLarge("image too large to decode".into())
        }
        e => PosterError::NotAnImage(format!(
            "the png is corrupt or truncated ({})",
            e.to_string().to_lowercase()
        )),
    }
}

/// What an upload that is not a PNG looks like, for the error message.
fn sniff(bytes: &[u8]) -> &'static str {
    if bytes.is_empty() {
        "the file is empty"
    } else if bytes.starts_with(b"\xFF\xD8\xFF") {
        "it is a jpeg"
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        "it is a gif"
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        "it is a webp"
    } else if bytes.starts_with(b"BM") {
        "it is a bmp"
    } else if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        "it is a heic/avif or other iso media file"
    } else if bytes.starts_with(b"<svg") || bytes.starts_with(b"<?xml") {
        "it is svg/xml text"
    } else if bytes.starts_with(b"%PDF") {
        "it is a pdf"
    } else if looks_like_text(bytes) {
        "it is text"
    } else {
        "unrecognised data"
    }
}

/// Valid UTF-8 without NUL in the first 512 bytes (a character cut at the
/// 512th byte still counts).
fn looks_like_text(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(512)];
    let utf8 = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    };
    utf8 && !head.contains(&0)
}
