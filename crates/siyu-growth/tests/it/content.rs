//! The content library without HTTP: validation and its messages, saving
//! (views kept), listing, counting a view, the view event and the link.

use serde_json::json;
use siyu_domain::EventType;
use siyu_growth::content::{self, Content, ContentError, Kind};
use siyu_store::{SqliteStore, Store};

fn store() -> Box<dyn Store> {
    Box::new(SqliteStore::open_in_memory().expect("in-memory store"))
}

fn article(url: &str) -> Content {
    serde_json::from_value(json!({"kind": "article", "title": "Guide", "url": url}))
        .expect("a content body")
}

#[test]
fn validation_names_the_field_and_the_fix() {
    let mut untitled = article("https://example.com/a");
    untitled.title = "  ".into();
    let cases = [
        (untitled, "title: give the item a title"),
        (
            article("https://example.com/a\r\nSet-Cookie: x"),
            "url: control character '\\r' at byte 21; a URL has no line breaks or control characters (percent-encode them)",
        ),
        (
            article("javascript:alert(1)"),
            "url: \"javascript:alert(1)\" must be an http(s) URL",
        ),
        (
            serde_json::from_value(json!({"kind": "miniprogram", "title": "Card", "url": "https://example.com", "appid": "wx1"})).unwrap(),
            "appid, path: a mini-program card needs both",
        ),
    ];
    for (c, message) in cases {
        assert_eq!(c.validate().unwrap_err().to_string(), message);
    }
    assert!(article("http://example.com/a").validate().is_ok());
    let card: Content = serde_json::from_value(json!({"kind": "miniprogram", "title": "Card", "url": "https://example.com", "appid": "wx1", "path": "pages/a"})).unwrap();
    assert!(card.validate().is_ok());
}

#[test]
fn unknown_fields_are_refused() {
    let r = serde_json::from_value::<Content>(
        json!({"kind": "article", "title": "t", "url": "https://e.com", "colour": "red"}),
    );
    assert!(r.is_err());
}

#[test]
fn saving_takes_the_id_from_the_path_and_keeps_the_views() {
    let mut s = store();
    let mut c = article("https://example.com/a");
    c.id = "ignored".into();
    let saved = content::save(s.as_mut(), "guide", c).unwrap();
    assert_eq!((saved.id.as_str(), saved.views), ("guide", 0));
    for _ in 0..3 {
        content::record_view(s.as_mut(), "guide").unwrap();
    }
    // A saved item's count is the stored one, not the body's.
    let mut edit = article("https://example.com/b");
    edit.views = 99;
    let again = content::save(s.as_mut(), "guide", edit).unwrap();
    assert_eq!(again.views, 3);
    assert_eq!(again.url, "https://example.com/b");
    // The stored form is the wire form: no appid/path for an article.
    assert_eq!(
        s.get_setting("content/guide").unwrap().unwrap(),
        json!({"id": "guide", "kind": "article", "title": "Guide", "url": "https://example.com/b", "views": 3})
    );
}

#[test]
fn an_invalid_item_is_not_saved() {
    let mut s = store();
    let r = content::save(s.as_mut(), "bad", article("ftp://example.com"));
    assert!(matches!(r, Err(ContentError::NotHttp { .. })));
    assert!(content::list(s.as_mut()).unwrap().is_empty());
}

#[test]
fn listing_returns_every_item_by_id() {
    let mut s = store();
    content::save(s.as_mut(), "b", article("https://example.com/b")).unwrap();
    content::save(s.as_mut(), "a", article("https://example.com/a")).unwrap();
    let ids: Vec<String> = content::list(s.as_mut())
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, ["a", "b"]);
}

#[test]
fn a_view_counts_and_an_unknown_item_is_not_found() {
    let mut s = store();
    content::save(s.as_mut(), "guide", article("https://example.com/a")).unwrap();
    assert_eq!(content::record_view(s.as_mut(), "guide").unwrap().views, 1);
    assert_eq!(content::record_view(s.as_mut(), "guide").unwrap().views, 2);
    let e = content::record_view(s.as_mut(), "nope").unwrap_err();
    assert!(matches!(e, ContentError::NotFound { .. }));
    assert_eq!(e.to_string(), "no such content");
}

#[test]
fn a_view_is_a_custom_content_view_event_on_the_person() {
    let mut c = article("https://example.com/a");
    c.id = "guide".into();
    let ev = content::view_event(&c, "wecom:wm_1", 1_800_000_000).unwrap();
    assert_eq!(ev.ts, 1_800_000_000);
    assert_eq!(ev.identity.as_str(), "wecom:wm_1");
    assert_eq!(ev.event_type, EventType::Custom);
    assert_eq!(ev.channel.as_str(), "wecom");
    assert_eq!(ev.name.as_deref(), Some("content_view"));
    assert_eq!(
        serde_json::Value::Object(ev.properties.unwrap()),
        json!({"content": "guide", "kind": "article"})
    );
    assert!(content::view_event(&c, "not an identity", 0).is_none());
    c.kind = Kind::Image;
    let ev = content::view_event(&c, "wecom:wm_1", 0).unwrap();
    assert_eq!(ev.properties.unwrap()["kind"], "image");
}

#[test]
fn the_link_and_the_placeholder() {
    assert_eq!(
        content::tracked_link("https://s.example.com/", "guide", "id.mac"),
        "https://s.example.com/c/guide?p=id.mac"
    );
    assert_eq!(content::placeholder("guide"), "{{content.guide}}");
}
