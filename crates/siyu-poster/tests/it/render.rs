//! Rendering: real PNGs, QR codes that scan back to the link (rqrr), names
//! drawn in CJK and kept within their box.

use siyu_poster::{qr_png, PosterError, PosterTemplate, Rect, Renderer};

use crate::support::{cjk_font, decode, encode, gradient_png, template, BACKGROUND};

const LINK: &str = "https://siyu.example.com/i/7Hq2xK?c=spring-2025&from=wecom";

fn renderer(t: PosterTemplate) -> Renderer {
    Renderer::new(t, None, cjk_font()).expect("a valid template")
}

#[test]
fn a_poster_is_a_png_of_the_template_size() {
    let png = renderer(template()).render("张三", LINK).unwrap();
    let poster = decode(&png);
    assert_eq!((poster.width, poster.height), (750, 1334));
    // Away from every box, the poster is the background colour.
    assert_eq!(poster.count_not((0, 0, 750, 650), BACKGROUND), 0);
}

#[test]
fn a_qr_png_alone_is_the_link_on_white_of_the_size_asked() {
    for (link, size) in [(LINK, 400), ("https://s.example.cn/l/vip", 220)] {
        let png = decode(&qr_png(link, size).unwrap());
        assert_eq!((png.width, png.height), (size, size));
        let square = Rect { x: 0, y: 0, size };
        assert_eq!(png.qr(square), (0, link.to_owned()));
        // The quiet zone: the border rows are white.
        assert_eq!(png.count_not((0, 0, size, 4), [255, 255, 255]), 0);
    }
    assert!(matches!(qr_png("", 400), Err(PosterError::InvalidLink(_))));
    // Too long for the size at 2 px per module: refused, not blurred.
    assert!(matches!(
        qr_png(&"x".repeat(1000), 100),
        Err(PosterError::InvalidLink(_))
    ));
}

#[test]
fn the_qr_code_scans_back_to_the_link_at_level_m() {
    let r = renderer(template());
    let long = format!(
        "{LINK}&utm_source=poster&utm_medium=fission&utm_campaign={}",
        "x".repeat(120)
    );
    for link in [
        LINK,
        "https://s.example.cn/邀请/张三?ref=42",
        long.as_str(),
        "a",
    ] {
        let poster = decode(&r.render("李四", link).unwrap());
        assert_eq!(
            poster.qr(template().qr),
            (0, link.to_owned()),
            "ecc level M is 0 in rqrr's metadata"
        );
    }
}

#[test]
fn the_qr_code_scans_on_a_background_image() {
    let background = gradient_png(600, 900);
    let mut t = template();
    t.qr = Rect {
        x: 150,
        y: 500,
        size: 300,
    };
    (t.name.x, t.name.y) = (50, 420);
    let caption = &mut t.caption.as_mut().unwrap().text_box;
    (caption.x, caption.y) = (50, 820);
    let r = Renderer::new(t.clone(), Some(&background), cjk_font()).unwrap();
    assert_eq!(
        r.size(),
        (600, 900),
        "the background's size wins over width × height"
    );
    let poster = decode(&r.render("王五", LINK).unwrap());
    assert_eq!((poster.width, poster.height), (600, 900));
    assert_eq!(poster.qr(t.qr).1, LINK);
    // Outside the boxes the background image shows through unchanged.
    assert_eq!(
        poster.pixel(10, 10),
        [(10 * 255 / 600) as u8, (10 * 255 / 900) as u8, 180]
    );
    assert_eq!(
        poster.pixel(599, 899),
        [(599 * 255 / 600) as u8, (899 * 255 / 900) as u8, 180]
    );
}

#[test]
fn a_transparent_background_shows_the_background_color() {
    // Left half transparent, right half opaque blue.
    let (w, h) = (300u32, 400u32);
    let data: Vec<u8> = (0..h)
        .flat_map(|_| {
            (0..w).flat_map(|x| {
                if x < w / 2 {
                    [0, 0, 0, 0]
                } else {
                    [0, 0, 255, 255]
                }
            })
        })
        .collect();
    let background = encode(w, h, png::ColorType::Rgba, &data);
    let mut t = template();
    t.qr = Rect {
        x: 20,
        y: 150,
        size: 120,
    };
    t.name = siyu_poster::TextBox {
        x: 150,
        y: 20,
        size_px: 30.0,
        color: "#000000".into(),
        max_width: 140,
        align: Default::default(),
    };
    t.caption = None;
    let poster = decode(
        &Renderer::new(t, Some(&background), cjk_font())
            .unwrap()
            .render("", "https://e.cn/x")
            .unwrap(),
    );
    assert_eq!(poster.pixel(5, 5), BACKGROUND);
    assert_eq!(poster.pixel(295, 395), [0, 0, 255]);
}

#[test]
fn the_name_is_drawn_in_cjk_in_its_color() {
    let t = template();
    let r = renderer(t.clone());
    let name_area = (
        t.name.x,
        t.name.y,
        t.name.x + t.name.max_width,
        t.name.y + 48,
    );
    let empty = decode(&r.render("", LINK).unwrap());
    assert_eq!(empty.count_not(name_area, BACKGROUND), 0, "no name, no ink");

    let named = decode(&r.render("张三丰", LINK).unwrap());
    let ink = named.count_not(name_area, BACKGROUND);
    assert!(
        ink > 500,
        "three 48 px CJK glyphs leave ink, got {ink} pixels"
    );
    let exact = (name_area.1..name_area.3)
        .flat_map(|y| (name_area.0..name_area.2).map(move |x| (x, y)))
        .filter(|&(x, y)| named.pixel(x, y) == [0xC0, 0x39, 0x2B])
        .count();
    assert!(
        exact > 100,
        "solid strokes are exactly name.color, got {exact} pixels"
    );
    assert_eq!(r.layout_name("张三丰").text, "张三丰");
    assert_eq!(r.layout_name("张三丰").size_px, 48.0);

    // Centred: the ink is balanced about the box's centre line.
    let centre = t.name.x + t.name.max_width / 2;
    let left = named.count_not((t.name.x, t.name.y, centre, t.name.y + 48), BACKGROUND);
    let right = named.count_not(
        (centre, t.name.y, t.name.x + t.name.max_width, t.name.y + 48),
        BACKGROUND,
    );
    assert!(
        left.abs_diff(right) * 4 < ink,
        "left {left} vs right {right}"
    );
}

#[test]
fn the_caption_is_drawn_once_into_the_base() {
    let t = template();
    let caption = t.caption.clone().unwrap().text_box;
    let poster = decode(&renderer(t).render("张三", LINK).unwrap());
    let area = (
        caption.x,
        caption.y,
        caption.x + caption.max_width,
        caption.y + 36,
    );
    assert!(poster.count_not(area, BACKGROUND) > 500);
}

#[test]
fn a_long_name_shrinks_then_is_cut_with_an_ellipsis_within_max_width() {
    let t = template();
    let r = renderer(t.clone());

    // A bit too long: shrunk, not cut.
    let medium = "欧阳娜娜的好朋友们十二个字";
    let layout = r.layout_name(medium);
    assert_eq!(layout.text, medium);
    assert!(!layout.ellipsized);
    assert!(
        layout.size_px < 48.0 && layout.size_px >= 48.0 * 0.6,
        "{layout:?}"
    );
    assert!(layout.width_px <= 500.0, "{layout:?}");

    // Far too long: smallest size, cut, ends with "…".
    let long = "诸葛孔明".repeat(40);
    let layout = r.layout_name(&long);
    assert!(layout.ellipsized, "{layout:?}");
    assert!(
        layout.text.ends_with('…') && long.starts_with(layout.text.trim_end_matches('…')),
        "{layout:?}"
    );
    assert!(
        layout.width_px <= 500.0 && layout.width_px > 400.0,
        "fills the box: {layout:?}"
    );
    assert!((layout.size_px - 48.0 * 0.6).abs() < 1e-3);

    // In pixels: nothing outside the box's columns on the name's rows.
    let poster = decode(&r.render(&long, LINK).unwrap());
    let rows = (t.name.y.saturating_sub(10), t.name.y + 58);
    assert_eq!(
        poster.count_not((0, rows.0, t.name.x, rows.1), BACKGROUND),
        0
    );
    assert_eq!(
        poster.count_not(
            (t.name.x + t.name.max_width, rows.0, 750, rows.1),
            BACKGROUND
        ),
        0
    );
    assert!(
        poster.count_not(
            (t.name.x, rows.0, t.name.x + t.name.max_width, rows.1),
            BACKGROUND
        ) > 1000
    );

    // Latin too (a long ASCII name at a left-aligned box).
    let mut left = t.clone();
    left.name.align = siyu_poster::TextAlign::Left;
    let layout = renderer(left).layout_name(&"Maximilian Alexander ".repeat(10));
    assert!(layout.ellipsized && layout.width_px <= 500.0, "{layout:?}");
    assert!(
        !layout.text.contains(" …"),
        "no space before the ellipsis: {layout:?}"
    );
}

#[test]
fn characters_missing_from_the_font_render_as_nothing() {
    let t = template();
    let r = renderer(t.clone());
    // Private-use and unassigned code points, controls and a lone combining mark.
    let missing = "\u{E000}\u{F8FF}\u{10FFFD}\u{0}\u{7}\n\t\u{200B}";
    let layout = r.layout_name(missing);
    assert!(
        layout
            .text
            .chars()
            .all(|c| !c.is_control() && !('\u{E000}'..='\u{F8FF}').contains(&c)),
        "{layout:?}"
    );
    let poster = decode(&r.render(&format!("{missing}张三{missing}"), LINK).unwrap());
    assert!(
        poster.count_not(
            (
                t.name.x,
                t.name.y,
                t.name.x + t.name.max_width,
                t.name.y + 48
            ),
            BACKGROUND
        ) > 300
    );
    assert_eq!(r.layout_name("张\u{E000}三").text, "张三");
}

#[test]
fn a_link_that_does_not_fit_the_qr_box_is_an_error() {
    let mut t = template();
    t.qr.size = 64;
    let r = renderer(t);
    // Version 1-M (21 modules + 8 quiet) fits 64 px at 2 px per module.
    assert!(r.render("张三", "https://e.cn/a").is_ok());
    let err = r
        .render("张三", &format!("https://e.cn/{}", "a".repeat(200)))
        .unwrap_err();
    assert!(
        matches!(&err, PosterError::InvalidLink(m) if m.contains("qr.size is 64 px")),
        "{err}"
    );
    assert_eq!(err.code(), "invalid_poster_link");

    let r = renderer(template());
    assert!(matches!(
        r.render("张三", ""),
        Err(PosterError::InvalidLink(_))
    ));
    let err = r.render("张三", &"x".repeat(3000)).unwrap_err();
    assert!(err.to_string().contains("do not fit in a qr code"), "{err}");
}

#[test]
fn a_bad_font_or_template_is_refused_at_construction() {
    let err = Renderer::new(template(), None, b"not a font").unwrap_err();
    assert!(matches!(err, PosterError::InvalidFont(_)), "{err}");
    let mut t = template();
    t.qr.size = 10;
    let err = Renderer::new(t, None, cjk_font()).unwrap_err();
    assert!(err.to_string().starts_with("qr.size:"), "{err}");
    let err = Renderer::new(template(), Some(b"GIF89a..."), cjk_font()).unwrap_err();
    assert!(err.to_string().contains("gif"), "{err}");
}

#[test]
fn a_renderer_is_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Renderer>();
    let r = std::sync::Arc::new(renderer(template()));
    let handles: Vec<_> = (0..2)
        .map(|i| {
            let r = r.clone();
            std::thread::spawn(move || decode(&r.render(&format!("用户{i}"), LINK).unwrap()).width)
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 750);
    }
}

#[test]
fn the_template_is_json_with_defaults() {
    let t: PosterTemplate = serde_json::from_str(
        r##"{"qr": {"x": 225, "y": 800, "size": 300},
             "name": {"x": 125, "y": 700, "size_px": 48, "color": "#C0392B", "max_width": 500, "align": "center"},
             "caption": {"text": "扫码加入，领取好礼", "x": 125, "y": 1130, "size_px": 36, "color": "#333333", "max_width": 500, "align": "center"}}"##,
    )
    .unwrap();
    assert_eq!(t, template());
    let back: PosterTemplate = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
    assert_eq!(back, t);

    let err = serde_json::from_str::<PosterTemplate>(
        r#"{"qr": {"x": 1, "y": 1, "size": 64, "szie": 3}}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("szie"), "{err}");
}
