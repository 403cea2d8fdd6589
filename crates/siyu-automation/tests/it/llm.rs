//! Redaction as a property: whatever the text around them, the person's
//! phones, e-mails and names never survive `Redactor::redact`, and
//! `restore` gives back exactly the text that was redacted.

use proptest::prelude::*;
use siyu_automation::llm::{RedactionPolicy, Redactor};

const NAMES: [&str; 3] = ["王小芳", "Jane Doe", "芳芳酱"];

/// A secret as a customer might write it.
fn secret() -> impl Strategy<Value = String> {
    prop_oneof![
        "1[3-9][0-9]{9}",
        "\\+86 1[3-9][0-9] [0-9]{4} [0-9]{4}",
        "1[3-9][0-9]-[0-9]{4}-[0-9]{4}",
        "[a-z]{1,8}(\\.[a-z]{1,5})?@[a-z]{2,8}\\.(com|cn|com\\.cn)",
        prop::sample::select(NAMES.to_vec()).prop_map(str::to_string),
    ]
}

/// Text around secrets: Chinese, ASCII words, short numbers, punctuation.
fn filler() -> impl Strategy<Value = String> {
    "[你好请问什么时候发货谢谢价格多少钱 a-zA-Z0-9，。！？:]{0,12}"
}

/// What separates a secret from the filler (digits would make a phone
/// number part of a longer number, which is not one).
fn sep() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![" ", "，", "：", "号", "tel", "(", ")"])
}

proptest! {
    #[test]
    fn secrets_never_survive_and_restore_inverts_redact(
        parts in prop::collection::vec((filler(), sep(), secret(), sep()), 1..5),
        tail in filler(),
    ) {
        let policy = RedactionPolicy::default();
        let names: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
        let mut r = Redactor::new(&policy, &names);
        let mut text = String::new();
        for (f, a, s, b) in &parts {
            text.push_str(f);
            text.push_str(a);
            text.push_str(s);
            text.push_str(b);
        }
        text.push_str(&tail);
        let out = r.redact(&text);
        for (_, _, s, _) in &parts {
            prop_assert!(!out.contains(s.as_str()), "{s} survived in {out} (from {text})");
        }
        prop_assert_eq!(r.restore(&out), text);
    }

    #[test]
    fn any_text_redacts_and_restores_without_panicking(text in "[^\\[]{0,80}") {
        let policy = RedactionPolicy::default();
        let mut r = Redactor::new(&policy, &["李雷".to_string()]);
        let out = r.redact(&text);
        prop_assert_eq!(r.restore(&out), text);
    }
}
