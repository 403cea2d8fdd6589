//! Property tests: any name renders without panicking, within its box.

use proptest::prelude::*;
use siyu_poster::{PosterTemplate, Rect, Renderer, TextAlign, TextBox};

use crate::support::{cjk_font, decode, BACKGROUND};

/// A small poster so each case is quick.
fn small() -> PosterTemplate {
    PosterTemplate {
        width: 240,
        height: 320,
        background_color: "#FFF4E6".into(),
        qr: Rect {
            x: 60,
            y: 120,
            size: 120,
        },
        name: TextBox {
            x: 20,
            y: 40,
            size_px: 32.0,
            color: "#000000".into(),
            max_width: 200,
            align: TextAlign::Center,
        },
        caption: None,
    }
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,80}",
        "[\\p{Han}]{0,60}",
        prop::collection::vec(any::<char>(), 0..200).prop_map(|cs| cs.into_iter().collect()),
        // Combining marks, joiners, RTL, emoji sequences.
        prop::collection::vec(
            prop::sample::select(vec![
                '\u{301}',
                '\u{200D}',
                '\u{202E}',
                '👨',
                '👩',
                '\u{FE0F}',
                'ا',
                'ب',
                '张',
                '\u{E0001}',
                '\u{FFFD}'
            ]),
            0..300
        )
        .prop_map(|cs| cs.into_iter().collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn any_name_renders_within_its_box(name in name()) {
        static RENDERER: std::sync::OnceLock<Renderer> = std::sync::OnceLock::new();
        let r = RENDERER.get_or_init(|| Renderer::new(small(), None, cjk_font()).unwrap());
        let layout = r.layout_name(&name);
        prop_assert!(layout.width_px <= 200.0, "{:?}", layout);
        let poster = decode(&r.render(&name, "https://e.cn/i/1").unwrap());
        prop_assert_eq!((poster.width, poster.height), (240, 320));
        prop_assert_eq!(poster.count_not((0, 0, 20, 120), BACKGROUND), 0);
        prop_assert_eq!(poster.count_not((220, 0, 240, 120), BACKGROUND), 0);
    }
}
