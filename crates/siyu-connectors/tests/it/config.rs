use siyu_connectors::{from_config, ConfigError, ConnectorsConfig, SmtpTls};

fn parse(json: &str) -> ConnectorsConfig {
    serde_json::from_str(json).expect("config parses")
}

#[tokio::test]
async fn builds_one_connector_per_section() {
    let cfg = parse(
        r#"{
        "webhook": {"url": "https://hooks.example.com/siyu", "secret": "s"},
        "email": {"host": "smtp.example.com", "from": "noreply@example.com", "username": "u", "password": "p"},
        "sms": {"base_url": "https://sms.example.com", "sdk_app_id": "1400", "sign_name": "思语"},
        "wecom": {"corp_id": "ww1", "secret": "s", "sender": "zhangsan"},
        "wechat": {"app_id": "wx1", "secret": "s", "timeout_ms": 3000},
        "bridges": {"douyin": {"url": "https://bridge.example.com/douyin", "secret": "s"}}
    }"#,
    );
    assert_eq!(cfg.email.as_ref().unwrap().tls, SmtpTls::Starttls);
    assert_eq!(
        cfg.wecom.as_ref().unwrap().base_url,
        "https://qyapi.weixin.qq.com"
    );
    assert_eq!(
        cfg.wechat.as_ref().unwrap().base_url,
        "https://api.weixin.qq.com"
    );
    assert_eq!(cfg.webhook.as_ref().unwrap().timeout_ms, 5000);
    let map = from_config(&cfg).expect("valid");
    let mut names: Vec<&str> = map.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "douyin",
            "email",
            "sms",
            "webhook",
            "wechat",
            "wecom",
            "wecom_api"
        ]
    );
    for (name, c) in &map {
        assert_eq!(c.name(), name);
    }
    assert!(from_config(&ConnectorsConfig::default())
        .unwrap()
        .is_empty());
    // Secrets never show in Debug output.
    let debug = format!("{cfg:?}");
    assert!(
        debug.contains("<redacted>") && !debug.contains("secret: \"s\""),
        "{debug}"
    );
}

#[tokio::test]
async fn errors_name_the_field() {
    let cases = [
        (
            r#"{"wecom": {"secret": "s", "sender": "x"}}"#,
            ConfigError::Missing("wecom.corp_id".into()),
        ),
        (
            r#"{"bridges": {"douyin": {"url": "https://b.example.com"}}}"#,
            ConfigError::Missing("bridges.douyin.secret".into()),
        ),
        (
            r#"{"bridges": {"kuaishou": {"secret": "s"}}}"#,
            ConfigError::Missing("bridges.kuaishou.url".into()),
        ),
        (
            r#"{"wecom": {"corp_id": "c", "sender": "x"}}"#,
            ConfigError::Missing("wecom.secret".into()),
        ),
        (
            r#"{"wechat": {"app_id": "a"}}"#,
            ConfigError::Missing("wechat.secret".into()),
        ),
        (
            r#"{"webhook": {"secret": "s"}}"#,
            ConfigError::Missing("webhook.url".into()),
        ),
        (
            r#"{"email": {"host": "h"}}"#,
            ConfigError::Missing("email.from".into()),
        ),
        (
            r#"{"email": {"host": "h", "from": "a@b.c", "username": "u"}}"#,
            ConfigError::Missing("email.password".into()),
        ),
        (
            r#"{"sms": {"base_url": "http://x", "sdk_app_id": "1"}}"#,
            ConfigError::Missing("sms.sign_name".into()),
        ),
    ];
    for (json, expected) in cases {
        let err = from_config(&parse(json)).err().expect(json);
        assert_eq!(err, expected, "{json}");
    }
    let err = from_config(&parse(
        r#"{"sms": {"base_url": "ftp://x", "sdk_app_id": "1", "sign_name": "s"}}"#,
    ))
    .err()
    .unwrap();
    assert!(
        matches!(&err, ConfigError::Invalid { field, .. } if field == "sms.base_url"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "sms.base_url is invalid: must start with http:// or https://"
    );
    let err = from_config(&parse(
        r#"{"email": {"host": "h", "from": "not an address"}}"#,
    ))
    .err()
    .unwrap();
    assert!(
        matches!(&err, ConfigError::Invalid { field, .. } if field == "email.from"),
        "{err}"
    );
    // A bridge serves a channel of its own, named like one.
    for (name, says) in [("wecom", "built-in"), ("Dou Yin", "lowercase")] {
        let json = format!(
            r#"{{"bridges": {{"{name}": {{"url": "https://b.example.com", "secret": "s"}}}}}}"#
        );
        let err = from_config(&parse(&json)).err().expect(&json);
        assert!(
            matches!(&err, ConfigError::Invalid { field, reason } if *field == format!("bridges.{name}") && reason.contains(says)),
            "{err}"
        );
    }
    // A typo is an error, not a silently ignored field.
    let typo =
        serde_json::from_str::<ConnectorsConfig>(r#"{"wecom": {"corpid": "c"}}"#).unwrap_err();
    assert!(typo.to_string().contains("corpid"), "{typo}");
}
