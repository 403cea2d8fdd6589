//! template: compile errors with positions, rendering, variants, round trip.

use std::collections::BTreeMap;

use proptest::prelude::*;
use siyu_automation::guard::MessageClass;
use siyu_automation::template::{compile, RenderError, Template, TemplateError, Variant};

fn template(body: &str) -> Template {
    Template {
        name: "t".into(),
        body: body.into(),
        subject: None,
        html: None,
        variants: BTreeMap::new(),
        class: MessageClass::Marketing,
        wechat_template: None,
    }
}

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn render(body: &str, pairs: &[(&str, &str)]) -> Result<String, RenderError> {
    let compiled = compile(&template(body)).unwrap();
    compiled.render("wechat", &vars(pairs)).map(|r| r.body)
}

#[test]
fn renders_variables_and_defaults() {
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("你好", &[], "你好"),
        ("{{ name }}，您好", &[("name", "王芳")], "王芳，您好"),
        ("{{name}}", &[("name", "Li")], "Li"),
        ("{{ name | default: \"朋友\" }}，您好", &[], "朋友，您好"),
        ("{{ name | default: \"朋友\" }}", &[("name", "")], "朋友"),
        ("{{ name|default:'朋友' }}", &[], "朋友"),
        ("{{ name | default: “朋友” }}", &[], "朋友"),
        ("{{ name | default: \"a \\\"b\\\" }} | c\" }}", &[], "a \"b\" }} | c"),
        ("{{ name | default: \"\" }}!", &[], "!"),
        ("{{ trait.city }}/{{ prop.ltv }}/{{ person.id }}", &[("trait.city", "杭州"), ("prop.ltv", "3"), ("person.id", "p1")], "杭州/3/p1"),
        ("{{ campaign.code }} {{ content.spring-sale }} {{ invite_link }} {{ unsubscribe_link }}",
         &[("campaign.code", "C1"), ("content.spring-sale", "https://x/s"), ("invite_link", "L"), ("unsubscribe_link", "U")],
         "C1 https://x/s L U"),
        ("\\{{ name }}", &[], "{{ name }}"),
        ("a \\ b }} {", &[], "a \\ b }} {"),
        ("{{{ name }}}", &[("name", "x")], "{x}"),
        ("{{ phone }}{{ phone }}", &[("phone", "1")], "11"),
        ("{{ name }}", &[("name", "")], ""),
    ];
    for (body, pairs, expected) in cases {
        assert_eq!(render(body, pairs).as_deref(), Ok(*expected), "{body}");
    }
}

#[test]
fn missing_variable_without_default() {
    let err = render("Hi {{ trait.vip_level }}", &[]).unwrap_err();
    assert_eq!(
        err,
        RenderError::MissingVariable {
            path: "trait.vip_level".into(),
            part: "body"
        }
    );
    let message = err.to_string();
    assert!(
        message.starts_with("missing variable \"trait.vip_level\" in body (no default)"),
        "{message}"
    );
    assert!(
        message.contains("{{ trait.vip_level | default: \"…\" }}"),
        "{message}"
    );
}

fn compile_error(body: &str) -> TemplateError {
    compile(&template(body)).unwrap_err()
}

#[test]
fn compile_errors_say_where_and_what_to_fix() {
    let cases = [
        ("Hi {{ name", 1, 4, "unclosed {{"),
        ("你好，{{ name", 1, 4, "unclosed {{"),
        ("line one\n第二行 {{ }}", 2, 5, "empty variable"),
        ("{{ foo.bar }}", 1, 4, "unknown variable namespace \"foo\""),
        ("{{ email }}", 1, 4, "unknown variable \"email\""),
        ("{{ person.name }}", 1, 4, "only person.id"),
        ("{{ trait. }}", 1, 4, "bad variable"),
        ("{{ trait.a b }}", 1, 4, "no spaces"),
        ("{{ name | upper }}", 1, 11, "bad filter upper"),
        ("{{ name | }}", 1, 11, "bad filter (nothing)"),
        ("{{ name | default 朋友 }}", 1, 19, "default:"),
        ("{{ name | default: 朋友 }}", 1, 20, "needs quotes"),
        ("{{ name | default: \"朋友 }}", 1, 20, "unclosed quote"),
        ("{{ name | default: \"a\" x }}", 1, 24, "expected }}"),
        (
            "{{ name | default: \"a\" | default: \"b\" }}",
            1,
            24,
            "only one filter",
        ),
        ("{{ name {{ phone }}", 1, 1, "unclosed {{"),
    ];
    for (body, line, column, message) in cases {
        let err = compile_error(body);
        assert_eq!(
            (err.part.as_str(), err.line, err.column),
            ("body", line, column),
            "{body}: {err}"
        );
        assert!(err.message.contains(message), "{body}: {err}");
    }
    assert_eq!(
        compile_error("你好 {{ foo.x }}").to_string(),
        "body:1:7: unknown variable namespace \"foo\": use name, phone, city, invite_link, unsubscribe_link, person.id, trait.X, prop.X, campaign.X or content.X"
    );
}

#[test]
fn errors_name_the_part() {
    let mut t = template("ok");
    t.subject = Some("{{ nope }}".into());
    assert_eq!(compile(&t).unwrap_err().part, "subject");
    let mut t = template("ok");
    t.variants.insert(
        "wecom".into(),
        Variant {
            body: "fine\n  {{ name".into(),
            subject: None,
            html: None,
        },
    );
    let err = compile(&t).unwrap_err();
    assert_eq!(
        (err.part.as_str(), err.line, err.column),
        ("variants.wecom.body", 2, 3)
    );
    let mut t = template("ok");
    t.variants.insert(
        "email".into(),
        Variant {
            body: "ok".into(),
            subject: Some("{{}}".into()),
            html: None,
        },
    );
    assert_eq!(compile(&t).unwrap_err().part, "variants.email.subject");
    let mut t = template("ok");
    t.name = " ".into();
    assert_eq!(compile(&t).unwrap_err().part, "name");
}

#[test]
fn channel_variants_and_subjects() {
    let t: Template = serde_json::from_str(
        r#"{
            "name": "welcome",
            "subject": "欢迎 {{ name | default: \"朋友\" }}",
            "body": "{{ name | default: \"朋友\" }}，欢迎！退订回T",
            "variants": {
                "wecom": {"body": "{{ name }}您好，这是企微专属：{{ invite_link }}"},
                "email": {"body": "Dear {{ name }}", "subject": "Welcome {{ name }}"}
            }
        }"#,
    )
    .unwrap();
    assert_eq!(t.class, MessageClass::Marketing);
    let compiled = compile(&t).unwrap();
    let v = vars(&[("name", "小明"), ("invite_link", "https://wx/i")]);
    let sms = compiled.render("sms", &v).unwrap();
    assert_eq!(sms.subject.as_deref(), Some("欢迎 小明"));
    assert_eq!(sms.body, "小明，欢迎！退订回T");
    let wecom = compiled.render("wecom", &v).unwrap();
    assert_eq!(wecom.body, "小明您好，这是企微专属：https://wx/i");
    assert_eq!(
        wecom.subject.as_deref(),
        Some("欢迎 小明"),
        "a variant without subject keeps the template's"
    );
    let email = compiled.render("email", &v).unwrap();
    assert_eq!(email.subject.as_deref(), Some("Welcome 小明"));
    assert_eq!(compiled.variables(), ["invite_link", "name"]);
    // Vars from a closure.
    let closure = |path: &str| (path == "name").then(|| "Ann".to_string());
    assert_eq!(
        compiled.render("sms", &closure).unwrap().body,
        "Ann，欢迎！退订回T"
    );
}

#[test]
fn printer_round_trips() {
    let bodies = [
        "Hi {{name}}, {{ trait.city | default: 'Hangzhou' }}!",
        "\\{{ not a tag }} {{{ name }}}",
        "{{ name | default: “a\"b\\c” }}",
        "{\\{{{{ name }}",
        "",
    ];
    for body in bodies {
        let compiled = compile(&template(body)).unwrap();
        let printed = compiled.to_template();
        assert_eq!(
            compile(&printed).unwrap(),
            compiled,
            "{body} → {}",
            printed.body
        );
    }
}

proptest! {
    #[test]
    fn compile_never_panics_and_printing_round_trips(body in "(\\PC|[{}|\\\\\"' ]|\\{\\{ ?name ?\\}\\}|default:){0,30}") {
        if let Ok(compiled) = compile(&template(&body)) {
            let printed = compiled.to_template();
            let again = compile(&printed);
            prop_assert_eq!(again, Ok(compiled.clone()), "{:?} → {:?}", body, printed.body);
            let _ = compiled.render("x", &vars(&[("name", "n")]));
        }
    }

    #[test]
    fn compile_never_panics_on_any_text(body in "\\PC{0,60}") {
        let _ = compile(&template(&body));
    }
}

#[test]
fn an_html_body_escapes_what_it_inserts_and_variants_may_replace_it() {
    let t: Template = serde_json::from_str(
        r#"{
            "name": "news",
            "subject": "{{ name }}，本周上新",
            "body": "{{ name }}：本周上新。退订 {{ unsubscribe_link }}",
            "html": "<p>{{ name | default: \"朋友\" }}：<b>本周上新</b></p><a href=\"{{ unsubscribe_link }}\">退订</a>",
            "variants": {"wecom": {"body": "企微：{{ name }}"}, "sms": {"body": "短信", "html": "<i>{{ city }}</i>"}}
        }"#,
    )
    .unwrap();
    let c = compile(&t).unwrap();
    let v = vars(&[
        ("name", "<script>\"王\" & 'x'</script>"),
        ("unsubscribe_link", "https://s.example/u/ab.cd?x=1&y=2"),
        ("city", "上海"),
    ]);
    let r = c.render("email", &v).unwrap();
    assert_eq!(
        r.html.as_deref(),
        Some("<p>&lt;script&gt;&quot;王&quot; &amp; &#39;x&#39;&lt;/script&gt;：<b>本周上新</b></p><a href=\"https://s.example/u/ab.cd?x=1&amp;y=2\">退订</a>")
    );
    // The text body is not escaped.
    assert!(r.body.starts_with("<script>\"王\""), "{}", r.body);
    // A variant without html keeps the template's; one with html replaces it.
    assert!(c
        .render("wecom", &v)
        .unwrap()
        .html
        .unwrap()
        .contains("本周上新"));
    assert_eq!(
        c.render("sms", &v).unwrap().html.as_deref(),
        Some("<i>上海</i>")
    );
    assert!(c.variables().contains(&"city".to_string()));
    // Errors name the html part; the printed template round-trips it.
    let mut bad = t.clone();
    bad.html = Some("<p>\n {{ nope }}".into());
    let err = compile(&bad).unwrap_err();
    assert_eq!((err.part.as_str(), err.line), ("html", 2));
    assert_eq!(compile(&c.to_template()).unwrap(), c);
    // Without html nothing changes: no html rendered, none serialized.
    let plain = compile(&template("hi")).unwrap();
    assert_eq!(plain.render("email", &v).unwrap().html, None);
    assert!(!serde_json::to_string(&template("hi"))
        .unwrap()
        .contains("html"));
}

/// A WeChat template message: its fields render like the body, a missing
/// variable is the same error, and it survives printing back.
#[test]
fn a_wechat_template_message_renders_and_round_trips() {
    let t: Template = serde_json::from_value(serde_json::json!({
        "name": "shipped",
        "body": "{{ name }}，您的订单已发货",
        "class": "transactional",
        "wechat_template": {
            "template_id": "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY",
            "data": {"first": "{{ name | default: \"您好\" }}，订单已发货", "keyword1": "{{ trait.order }}"},
            "url": "https://shop.example.com/o/{{ trait.order }}"
        }
    }))
    .unwrap();
    let c = compile(&t).unwrap();
    let mut vars = BTreeMap::new();
    vars.insert("trait.order".to_string(), "SY2026".to_string());
    let r = c.render_wechat_template(&vars).unwrap().unwrap();
    assert_eq!(r.template_id, "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY");
    assert_eq!(r.data["first"], "您好，订单已发货");
    assert_eq!(r.data["keyword1"], "SY2026");
    assert_eq!(r.url.as_deref(), Some("https://shop.example.com/o/SY2026"));
    assert!(c.variables().contains(&"trait.order".to_string()));
    assert!(c.render_wechat_template(&BTreeMap::new()).unwrap().is_err());
    assert_eq!(compile(&c.to_template()).unwrap(), c);
    assert!(compile(&template("x"))
        .unwrap()
        .render_wechat_template(&vars)
        .is_none());

    let mut bad = t.clone();
    bad.wechat_template.as_mut().unwrap().template_id = " ".into();
    assert_eq!(
        compile(&bad).unwrap_err().part,
        "wechat_template.template_id"
    );
    let mut bad = t;
    bad.wechat_template
        .as_mut()
        .unwrap()
        .data
        .insert("remark".into(), "{{ nope".into());
    assert_eq!(
        compile(&bad).unwrap_err().part,
        "wechat_template.data.remark"
    );
}
