//! Shared fixtures: the system CJK font, a template, PNG encode/decode, and
//! reading the QR code back out of rendered pixels with rqrr.

use std::sync::OnceLock;

use siyu_poster::{system_cjk_font, Caption, PosterTemplate, Rect, TextAlign, TextBox};

/// The CJK font, or a failure telling how to install one (never a skip).
pub fn cjk_font() -> &'static [u8] {
    static FONT: OnceLock<Vec<u8>> = OnceLock::new();
    FONT.get_or_init(|| {
        system_cjk_font().unwrap_or_else(|| {
            panic!(
                "no CJK font found at any of {:?}: install one with `apt-get install fonts-wqy-microhei`",
                siyu_poster::SYSTEM_CJK_FONT_PATHS
            )
        })
    })
}

/// A 750×1334 poster: QR in the lower middle, name above it, caption below.
pub fn template() -> PosterTemplate {
    PosterTemplate {
        width: 750,
        height: 1334,
        background_color: "#FFF4E6".into(),
        qr: Rect {
            x: 225,
            y: 800,
            size: 300,
        },
        name: TextBox {
            x: 125,
            y: 700,
            size_px: 48.0,
            color: "#C0392B".into(),
            max_width: 500,
            align: TextAlign::Center,
        },
        caption: Some(Caption {
            text: "扫码加入，领取好礼".into(),
            text_box: TextBox {
                x: 125,
                y: 1130,
                size_px: 36.0,
                color: "#333333".into(),
                max_width: 500,
                align: TextAlign::Center,
            },
        }),
    }
}

pub const BACKGROUND: [u8; 3] = [0xFF, 0xF4, 0xE6];

pub struct Decoded {
    pub width: u32,
    pub height: u32,
    /// RGB, 3 bytes per pixel.
    pub rgb: Vec<u8>,
}

impl Decoded {
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// Pixels in the rectangle [x0, x1) × [y0, y1) that differ from `color`.
    pub fn count_not(&self, (x0, y0, x1, y1): (u32, u32, u32, u32), color: [u8; 3]) -> usize {
        (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .filter(|&(x, y)| self.pixel(x, y) != color)
            .count()
    }

    /// The QR code found in the square `r`, decoded by rqrr: (ecc level, text).
    pub fn qr(&self, r: Rect) -> (u16, String) {
        let mut img = rqrr::PreparedImage::prepare_from_greyscale(
            r.size as usize,
            r.size as usize,
            |x, y| {
                let [red, green, blue] = self.pixel(r.x + x as u32, r.y + y as u32);
                ((u32::from(red) * 299 + u32::from(green) * 587 + u32::from(blue) * 114) / 1000)
                    as u8
            },
        );
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1, "expected exactly one qr code in {r:?}");
        let (meta, text) = grids[0].decode().expect("the qr code decodes");
        (meta.ecc_level, text)
    }
}

/// Decodes an 8-bit RGB PNG (what the renderer produces).
pub fn decode(png_bytes: &[u8]) -> Decoded {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("the poster is a png");
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).expect("the poster decodes");
    assert_eq!(
        (info.color_type, info.bit_depth),
        (png::ColorType::Rgb, png::BitDepth::Eight)
    );
    buf.truncate(info.buffer_size());
    Decoded {
        width: info.width,
        height: info.height,
        rgb: buf,
    }
}

/// Encodes `data` (rows of `color` pixels) as a PNG.
pub fn encode(width: u32, height: u32, color: png::ColorType, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(color);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(data).unwrap();
    writer.finish().unwrap();
    out
}

/// A `width`×`height` RGB gradient PNG.
pub fn gradient_png(width: u32, height: u32) -> Vec<u8> {
    let data: Vec<u8> = (0..height)
        .flat_map(|y| {
            (0..width).flat_map(move |x| [(x * 255 / width) as u8, (y * 255 / height) as u8, 180])
        })
        .collect();
    encode(width, height, png::ColorType::Rgb, &data)
}
