//! Finding a CJK font on the host: the crate's only disk access.

use ab_glyph::{Font, FontRef, GlyphId};

/// Where Debian's CJK font packages put their fonts, in order of preference:
/// `fonts-wqy-microhei`, `fonts-wqy-zenhei`, `fonts-noto-cjk` (a collection
/// whose first face is the Japanese one; Chinese text still renders, with
/// Japanese glyph forms for a few characters), `fonts-arphic-uming`/`ukai`,
/// `fonts-droid-fallback`.
pub const SYSTEM_CJK_FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/truetype/arphic/ukai.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
];

/// Reads the first font of [`SYSTEM_CJK_FONT_PATHS`] that exists, parses
/// (first face for a collection) and has glyphs for Chinese ("邀请好友"),
/// and returns its bytes for [`crate::Renderer::new`]. `None` when there is
/// none: install one with `apt-get install fonts-wqy-microhei`.
///
/// This is the one function in the crate that reads the disk; the server
/// calls it once at start, not per poster.
pub fn system_cjk_font() -> Option<Vec<u8>> {
    SYSTEM_CJK_FONT_PATHS.iter().find_map(|path| {
        let bytes = std::fs::read(path).ok()?;
        has_chinese(&bytes).then_some(bytes)
    })
}

fn has_chinese(bytes: &[u8]) -> bool {
    FontRef::try_from_slice_and_index(bytes, 0)
        .is_ok_and(|font| "邀请好友".chars().all(|c| font.glyph_id(c) != GlyphId(0)))
}
