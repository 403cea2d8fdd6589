//! Upload-time checks: the background is a usable PNG, the template fits
//! its canvas; every error says what is wrong and names the field.

use siyu_poster::{validate_background, validate_template, PosterError, PosterTemplate, Rect};

use crate::support::{encode, gradient_png, template};

#[test]
fn a_png_background_gives_its_size() {
    assert_eq!(validate_background(&gradient_png(640, 480)), Ok((640, 480)));
    // Grayscale, palette-free RGBA and interlaced-free small images all pass.
    assert_eq!(
        validate_background(&encode(3, 2, png::ColorType::Grayscale, &[0; 6])),
        Ok((3, 2))
    );
    assert_eq!(
        validate_background(&encode(1, 1, png::ColorType::Rgba, &[1, 2, 3, 4])),
        Ok((1, 1))
    );
}

#[test]
fn what_is_not_a_png_is_named() {
    let jpeg = b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xFF\xDB";
    let webp = b"RIFF\x24\x00\x00\x00WEBPVP8 ";
    let cases: &[(&[u8], &str)] = &[
        (
            jpeg,
            "background is not a png image: it is a jpeg; upload a png",
        ),
        (
            b"GIF89a\x01\x00\x01\x00",
            "background is not a png image: it is a gif; upload a png",
        ),
        (
            webp,
            "background is not a png image: it is a webp; upload a png",
        ),
        (
            "海报模板.txt 里是文字".as_bytes(),
            "background is not a png image: it is text; upload a png",
        ),
        (
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
            "background is not a png image: it is svg/xml text; upload a png",
        ),
        (
            b"",
            "background is not a png image: the file is empty; upload a png",
        ),
        (
            &[0x00, 0x9F, 0x13, 0xFE, 0x00, 0x00, 0x42, 0x80, 0xC3],
            "background is not a png image: unrecognised data; upload a png",
        ),
    ];
    for (bytes, message) in cases {
        let err = validate_background(bytes).unwrap_err();
        assert_eq!(err.to_string(), *message);
        assert_eq!(err.code(), "poster_background_not_an_image");
    }
}

#[test]
fn a_corrupt_or_truncated_png_is_refused() {
    let good = gradient_png(200, 100);
    let truncated = &good[..good.len() / 2];
    let mut bad_crc = good.clone();
    let idat = bad_crc.windows(4).position(|w| w == b"IDAT").unwrap();
    bad_crc[idat + 10] ^= 0xFF;
    let header_only = &good[..8];
    for bytes in [truncated, &bad_crc, header_only] {
        let err = validate_background(bytes).unwrap_err();
        assert!(
            matches!(&err, PosterError::NotAnImage(m) if m.starts_with("the png is corrupt or truncated")),
            "{err}"
        );
    }
}

#[test]
fn an_oversized_background_is_refused() {
    let wide = encode(4097, 1, png::ColorType::Grayscale, &vec![0; 4097]);
    let err = validate_background(&wide).unwrap_err();
    assert_eq!(
        err.to_string(),
        "background is too large: 4097×1 px; the limit is 4096×4096"
    );
    assert_eq!(err.code(), "poster_background_too_large");
    assert_eq!(
        validate_background(&encode(4096, 1, png::ColorType::Grayscale, &vec![0; 4096])),
        Ok((4096, 1))
    );

    let mut huge = gradient_png(8, 8);
    huge.resize(8 * 1024 * 1024 + 1, 0);
    let err = validate_background(&huge).unwrap_err();
    assert_eq!(
        err.to_string(),
        "background is too large: 8388609 bytes; the limit is 8 MiB"
    );
}

/// Each case breaks one thing; the error must name that field.
#[test]
fn template_errors_name_the_field() {
    type Break = fn(&mut PosterTemplate);
    type Case = (&'static str, Break, Option<(u32, u32)>);
    let cases: &[Case] = &[
        ("width", |t| t.width = 10, None),
        ("height", |t| t.height = 5000, None),
        (
            "background_color",
            |t| t.background_color = "orange".into(),
            None,
        ),
        (
            "background_color",
            |t| t.background_color = "#FFF".into(),
            None,
        ),
        ("qr.size", |t| t.qr.size = 63, None),
        ("qr.x", |t| t.qr.x = 500, None),
        (
            "qr.y",
            |t| {
                t.qr = Rect {
                    x: 0,
                    y: 1100,
                    size: 300,
                }
            },
            None,
        ),
        ("qr.y", |_| {}, Some((750, 1000))),
        ("name.color", |t| t.name.color = "#12345G".into(), None),
        ("name.size_px", |t| t.name.size_px = f32::NAN, None),
        ("name.size_px", |t| t.name.size_px = 2.0, None),
        ("name.max_width", |t| t.name.max_width = 0, None),
        ("name.x", |t| t.name.x = 300, None),
        ("name.y", |t| t.name.y = 1300, None),
        ("name", |t| t.name.y = 790, None),
        (
            "caption.text",
            |t| t.caption.as_mut().unwrap().text = " ".into(),
            None,
        ),
        (
            "caption.text",
            |t| t.caption.as_mut().unwrap().text = "好".repeat(201),
            None,
        ),
        (
            "caption.color",
            |t| t.caption.as_mut().unwrap().text_box.color = String::new(),
            None,
        ),
        (
            "caption.y",
            |t| t.caption.as_mut().unwrap().text_box.y = 1333,
            None,
        ),
        (
            "caption",
            |t| t.caption.as_mut().unwrap().text_box.y = 1000,
            None,
        ),
    ];
    assert_eq!(validate_template(&template(), None), Ok(()));
    for (field, break_it, background) in cases {
        let mut t = template();
        break_it(&mut t);
        match validate_template(&t, *background) {
            Err(PosterError::InvalidTemplate {
                field: got,
                message,
            }) => {
                assert_eq!(&got, field, "{message}");
                let err = validate_template(&t, *background).unwrap_err();
                assert_eq!(err.to_string(), format!("{field}: {message}"));
                assert_eq!(err.code(), "invalid_poster_template");
            }
            other => panic!("breaking {field}: expected an error naming it, got {other:?}"),
        }
    }
}

#[test]
fn template_messages_say_what_is_wrong() {
    let mut t = template();
    t.qr.size = 40;
    assert_eq!(
        validate_template(&t, None).unwrap_err().to_string(),
        "qr.size: must be at least 64 px, got 40"
    );
    let mut t = template();
    t.qr.x = 500;
    assert_eq!(
        validate_template(&t, None).unwrap_err().to_string(),
        "qr.x: the box ends at 800 px (qr.x + qr.size), past the canvas width of 750 px"
    );
    let mut t = template();
    t.name.color = "red".into();
    assert_eq!(
        validate_template(&t, None).unwrap_err().to_string(),
        "name.color: must be a colour like \"#FFF4E6\", got \"red\""
    );
    // With a background, its size is the canvas and width/height are not checked.
    let mut t = template();
    t.width = 0;
    assert_eq!(validate_template(&t, Some((750, 1334))), Ok(()));
}
