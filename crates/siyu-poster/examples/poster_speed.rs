//! How long one 750×1334 invite poster takes: the median of 100 renders,
//! for a flat background colour, a smooth background image and a noisy
//! (photo-like, hard to compress) one. Run in release:
//! `cargo run --release -p siyu-poster --example poster_speed`.
//! With `POSTER_OUT=DIR` it also writes one poster of each kind there.

use std::time::Instant;

use siyu_poster::{system_cjk_font, Caption, PosterTemplate, Rect, Renderer, TextAlign, TextBox};

fn main() {
    let font = system_cjk_font().expect("no CJK font: apt-get install fonts-wqy-microhei");
    let (w, h) = (750u32, 1334u32);
    let smooth = png_of(w, h, |x, y| [(x * 255 / w) as u8, (y * 255 / h) as u8, 200]);
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let noisy = png_of(w, h, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let n = (seed & 0x3F) as u32;
        [
            (x * 200 / w + n) as u8,
            (y * 200 / h + n) as u8,
            (150 + n) as u8,
        ]
    });
    for (label, background) in [
        ("flat colour", None),
        ("smooth background", Some(&smooth)),
        ("noisy background", Some(&noisy)),
    ] {
        let renderer = Renderer::new(template(), background.map(Vec::as_slice), &font)
            .expect("valid template");
        let mut times = Vec::with_capacity(100);
        let mut bytes = 0;
        for i in 0..100 {
            let start = Instant::now();
            let png = renderer
                .render(
                    &format!("邀请人{i}号·张三丰"),
                    &format!("https://siyu.example.com/i/{i:08x}?c=spring"),
                )
                .expect("renders");
            times.push(start.elapsed().as_secs_f64() * 1000.0);
            bytes = png.len();
        }
        if let Some(dir) = std::env::var_os("POSTER_OUT") {
            let png = renderer
                .render(
                    "欧阳娜娜的好朋友们十二个字",
                    "https://siyu.example.com/i/0000002a?c=spring",
                )
                .expect("renders");
            let path = std::path::Path::new(&dir).join(format!("{}.png", label.replace(' ', "-")));
            std::fs::write(&path, png).expect("write the sample poster");
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{label:>18}: median {:.2} ms/poster (min {:.2}, p90 {:.2}) over 100 renders of {w}×{h}, {} KiB",
            times[50],
            times[0],
            times[90],
            bytes / 1024
        );
    }
}

fn template() -> PosterTemplate {
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

fn png_of(w: u32, h: u32, mut pixel: impl FnMut(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let data: Vec<u8> = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .flat_map(|(x, y)| pixel(x, y))
        .collect();
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().expect("header");
    writer.write_image_data(&data).expect("data");
    writer.finish().expect("finish");
    out
}
