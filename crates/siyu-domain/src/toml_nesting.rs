//! A nesting guard for TOML texts, checked before parsing: the `toml`
//! parser recurses once per level of arrays and inline tables, so a file
//! nested thousands deep would overflow a small stack. Here (and not in
//! each reader) so every crate that reads a TOML file of ours — the
//! server's config, the order mapping of `siyu-commerce` — refuses the
//! same depth with the same message. Pure: it only counts brackets.

/// Deepest nesting of arrays and inline tables a TOML file of ours may
/// have. The `toml` parser recurses per level (and its own guard sits at
/// 80 levels, more stack than a small thread has in a debug build); siyu's
/// files nest three levels at most, so anything deeper is refused before
/// parsing.
pub const MAX_TOML_DEPTH: usize = 16;

/// Refuses a TOML text whose arrays / inline tables nest deeper than
/// [`MAX_TOML_DEPTH`], without parsing it: brackets are counted outside
/// strings and comments (a table header `[[a]]` counts as two, briefly).
pub fn check_toml_nesting(text: &str) -> Result<(), String> {
    let b = text.as_bytes();
    let (mut i, mut depth, mut line) = (0usize, 0usize, 1usize);
    // The end of a string opened at `i` by `quote` (1 or 3 quote bytes).
    let string_end = |i: usize, quote: u8, triple: bool| -> usize {
        let mut j = i + if triple { 3 } else { 1 };
        while j < b.len() {
            if quote == b'"' && b[j] == b'\\' {
                j += 2;
                continue;
            }
            if b[j] == quote && (!triple || b[j..].starts_with(&[quote; 3])) {
                return j + if triple { 3 } else { 1 };
            }
            if !triple && b[j] == b'\n' {
                return j;
            }
            j += 1;
        }
        b.len()
    };
    while i < b.len() {
        match b[i] {
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            q @ (b'"' | b'\'') => {
                let end = string_end(i, q, b[i..].starts_with(&[q; 3]));
                line += b[i..end].iter().filter(|&&c| c == b'\n').count();
                i = end;
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_TOML_DEPTH {
                    return Err(format!(
                        "line {line}: arrays and inline tables nest more than {MAX_TOML_DEPTH} levels deep; flatten the file"
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'\n' => line += 1,
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_nesting_counts_brackets_outside_strings_and_comments() {
        let deep = format!("x = {}1{}", "[".repeat(17), "]".repeat(17));
        let err = check_toml_nesting(&format!("a = 1\n{deep}")).unwrap_err();
        assert!(err.contains("line 2") && err.contains("16"), "{err}");
        assert!(check_toml_nesting(&format!("x = {}1{}", "[".repeat(16), "]".repeat(16))).is_ok());
        for fine in [
            "s = \"[[[[[[[[[[[[[[[[[[\"",
            "s = '{{{{{{{{{{{{{{{{{{{{'",
            "s = \"\"\"\n[[[[[[[[[[[[[[[[[[\n\"\"\"",
            "# [[[[[[[[[[[[[[[[[[[[[[\nx = 1",
            "s = \"\\\"[[[[[[[[[[[[[[[[[[[\"",
            "[[a.b]]\n[workspaces.b.inbound]\nwecom = \"s\"",
        ] {
            assert!(check_toml_nesting(fine).is_ok(), "{fine}");
        }
    }
}
