//! The demo's definitions — segments, spend, templates, journeys,
//! auto-replies, content, operators, groups, a live code and the fission
//! campaign — saved through the server's own HTTP routes (in process, with
//! the admin token), so they pass exactly the checks an operator's request
//! passes and nothing is written around them. Then a few newcomers arrive
//! as fresh events: the welcome journey and the auto-reply run for them,
//! and only for them (the generated history triggers nothing).

use anyhow::{bail, Context, Result};
use axum::body::Body;
use serde_json::{json, Value};
use siyu_server::Application;
use tower::ServiceExt;

/// Calls one route of `router` as the admin would; an answer outside 2xx
/// is an error naming the call and the answer.
async fn call(
    router: &axum::Router,
    token: &str,
    method: &str,
    path: &str,
    content_type: &str,
    body: String,
) -> Result<Value> {
    let request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", content_type)
        .body(Body::from(body))
        .context("building a demo request")?;
    let answer = router
        .clone()
        .oneshot(request)
        .await
        .context("calling the demo server")?;
    let status = answer.status();
    let bytes = axum::body::to_bytes(answer.into_body(), 16 << 20)
        .await
        .context("reading a demo answer")?;
    if !status.is_success() {
        bail!(
            "demo setup: {method} {path} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Saves the demo's definitions and lets the newcomers arrive at `now`.
pub async fn seed(app: &Application, admin_token: &str, now: i64) -> Result<()> {
    let router = siyu_server::app(app.state());
    let send = |method: &'static str, path: String, body: Value| {
        let router = router.clone();
        async move {
            call(
                &router,
                admin_token,
                method,
                &path,
                "application/json",
                body.to_string(),
            )
            .await
        }
    };
    let put = |path: String, body: Value| send("PUT", path, body);
    let post = |path: String, body: Value| send("POST", path, body);

    let segments = [
        (
            "douyin_repeat_buyers",
            r#"purchases(last 90d) >= 2 and net_spend >= 500.00 and first_channel = "douyin" and not opted_out"#,
        ),
        ("vip", r#"tag("vip") and not opted_out"#),
        (
            "lapsed_buyers",
            "purchases >= 1 and days_since_last_purchase >= 60",
        ),
        ("high_value", "rfm_m >= 4 and rfm_f >= 3"),
    ];
    for (name, source) in segments {
        put(format!("/v1/segments/{name}"), json!({ "segment": source })).await?;
    }
    // Each channel's budget spread over the last 180 days (to today), a
    // row per day (the remainder on the first), so a date range on the
    // dashboard finds the spend of its days.
    const DAYS: i64 = 180;
    let mut spend = "day,channel,spend\n".to_string();
    for (channel, total_cents) in [
        ("douyin", 18_000_000i64),
        ("kuaishou", 4_000_000),
        ("xiaohongshu", 5_500_000),
        ("taobao", 3_000_000),
        ("wechat", 1_200_000),
    ] {
        for d in 0..DAYS {
            let day = siyu_domain::time::format_rfc3339(now - (DAYS - 1 - d) * 86_400);
            let cents = total_cents / DAYS + if d == 0 { total_cents % DAYS } else { 0 };
            spend.push_str(&format!("{},{channel},{cents}\n", &day[..10]));
        }
    }
    call(&router, admin_token, "PUT", "/v1/spend", "text/csv", spend).await?;

    // Content first: a template may link it (`{{content.serum_review}}`).
    let content = [
        (
            "serum_review",
            json!({"kind": "article", "title": "精华液 30 天测评", "url": "https://example.com/articles/serum-30d"}),
        ),
        (
            "double11_poster",
            json!({"kind": "image", "title": "双11 会员海报", "url": "https://example.com/images/double11.png"}),
        ),
        (
            "member_center",
            json!({"kind": "miniprogram", "title": "会员中心", "url": "https://example.com/member", "appid": "wx1234567890abcdef", "path": "pages/member/index"}),
        ),
    ];
    for (id, body) in content {
        put(format!("/v1/content/{id}"), body).await?;
    }

    let templates = [
        (
            "welcome",
            json!({"body": "{{name | default: \"朋友\"}}，欢迎加入！新人券已放入您的账户。回复 TD 退订", "class": "marketing"}),
        ),
        (
            "price",
            json!({"body": "您好，这款 199 元，资料已发您～", "class": "transactional"}),
        ),
        (
            "winback",
            json!({"body": "好久不见，{{name | default: \"朋友\"}}！这周会员日全场 8 折", "class": "marketing",
                   "variants": {"email": {"subject": "会员日 8 折", "body": "好久不见！这周会员日全场 8 折。退订：{{unsubscribe_link}}"}}}),
        ),
        (
            "reward",
            json!({"body": "恭喜！您邀请的好友已达标，奖励已发放", "class": "transactional"}),
        ),
        (
            "new_article",
            json!({"body": "{{name | default: \"朋友\"}}，新品测评出炉：{{content.serum_review}}", "class": "marketing"}),
        ),
    ];
    for (name, body) in templates {
        put(format!("/v1/templates/{name}"), body).await?;
    }
    let journeys = [
        (
            "welcome",
            json!({"trigger": {"type": "event", "event": "add_friend", "channel": "wecom"}, "start": "hello",
                   "steps": {"hello": {"type": "send", "template": "welcome", "next": "wait"},
                             "wait": {"type": "wait_for_event", "event": "purchase", "timeout": "3d", "next": "thanks", "on_timeout": "call"},
                             "thanks": {"type": "add_tag", "tag": "converted"},
                             "call": {"type": "task", "title": "回访新好友", "due": "1d"}}}),
        ),
        (
            "winback",
            json!({"description": "lapsed buyers get one reminder, at 10:00 their time",
                   "trigger": {"type": "segment_entry", "segment": "lapsed_buyers"}, "reentry": {"cooldown": "30d"}, "start": "at10",
                   "steps": {"at10": {"type": "wait_until", "time": "10:00", "next": "send"},
                             "send": {"type": "send", "template": "winback"}}}),
        ),
    ];
    for (name, body) in journeys {
        put(format!("/v1/journeys/{name}"), body).await?;
    }
    put(
        "/v1/autoreply".into(),
        json!([{"id": "price", "matcher": {"any_of": ["多少钱", "价格", "求资料"]}, "reply_template": "price",
                "tags": ["lead"], "create_lead": true}]),
    )
    .await?;

    for (login, name) in crate::demo::OPERATORS {
        put(
            format!("/v1/operators/{login}"),
            json!({"name": name, "max_groups": 6}),
        )
        .await?;
    }
    let cities = ["上海", "北京", "杭州", "深圳", "成都", "广州"];
    for g in 0..crate::demo::GROUPS {
        let (login, _) = crate::demo::OPERATORS[g % crate::demo::OPERATORS.len()];
        let capacity = if g < 4 { 200 } else { 500 };
        put(
            format!("/v1/groups/g{g:02}"),
            json!({"channel": "wecom", "name": format!("{}会员{}群", cities[g % cities.len()], g / cities.len() + 1),
                   "capacity": capacity, "owner": login, "tags": ["会员"]}),
        )
        .await?;
    }
    put(
        "/v1/livecodes/vip".into(),
        json!({"targets": [{"group": "g00"}, {"group": "g01"}, {"group": "g02"}, {"operator": "op_wang"}],
               "daily_cap_per_operator": 200, "working_hours": {"start": "09:00", "end": "21:00", "timezone": "Asia/Shanghai"},
               "backup_operator": "op_li", "auto_tags": ["livecode"], "welcome_template": "welcome", "source_channel": "douyin"}),
    )
    .await?;

    // The rewards carry no message template: the signups that reach a
    // tier are the demo's history, and history messages nobody. The
    // ledger still shows every grant.
    let campaign = crate::demo::CAMPAIGN;
    put(
        format!("/v1/campaigns/{campaign}"),
        json!({"name": "双11 老带新", "tiers": [{"invites": 3, "reward": "coupon"}, {"invites": 10, "reward": "gift"}],
               "rewards": {"coupon": {"stock": 500, "cost": 1000}, "gift": {"stock": 50, "cost": 8900}},
               "rules": {"convert_within": "14d", "hold": "7d", "max_per_device": 2, "burst_max": 30, "burst_window": "1h"},
               "grant": "instant", "landing": {"next": "live_code", "live_code": "vip"}}),
    )
    .await?;
    record_clicks(&router, admin_token, campaign).await?;
    post(format!("/v1/campaigns/{campaign}/reconcile"), json!({})).await?;

    // The partner program: a Xiaohongshu KOC and an MCN whose arrivals
    // and orders are in the demo's history; the KOC was paid once, so its
    // ledger shows paid lines beside held and payable ones.
    for (id, definition) in crate::demo::partners() {
        put(format!("/v1/partners/{id}"), definition).await?;
    }
    post("/v1/partners/koc_amay/payouts".into(), json!({})).await?;

    // Newcomers arriving now: found on Douyin, asking the price, added in
    // WeCom. These fresh events run the welcome journey and the price
    // auto-reply (their messages wait in the outbox: the demo has no
    // connectors); nothing older does.
    let mut newcomers = Vec::new();
    for (n, name) in ["林晓", "郑雪", "孙浩"].iter().enumerate() {
        let public = format!("douyin:demo_new{n}");
        let wecom = format!("wecom:wm_new{n}");
        let at = |secs: i64| siyu_domain::time::format_rfc3339(now - secs);
        newcomers.extend([
            json!({"id": format!("demo-new-{n}-touch"), "ts": at(600), "identity": public, "type": "touch"}),
            json!({"id": format!("demo-new-{n}-comment"), "ts": at(300), "identity": public, "type": "comment", "text": "多少钱"}),
            json!({"id": format!("demo-new-{n}-link"), "ts": at(60), "identity": wecom, "type": "identify", "ref": public,
                   "traits": {"name": name, "timezone": "Asia/Shanghai", "operator": "op_wang"}}),
            json!({"id": format!("demo-new-{n}-friend"), "ts": at(59), "identity": wecom, "type": "add_friend"}),
        ]);
    }
    post("/v1/events".into(), Value::Array(newcomers)).await?;
    Ok(())
}

/// Landing clicks for the campaign's invitees (one each, a minute before
/// the signup) and as many again from visitors who did not sign up, on
/// the real invite codes (`POST …/invites`), made by the landing's own
/// core function (`siyu_growth::fission::click_event`) and ingested as
/// history.
async fn record_clicks(router: &axum::Router, token: &str, campaign: &str) -> Result<()> {
    let path = format!("/v1/campaigns/{campaign}/invitees?limit=10000");
    let answer = call(
        router,
        token,
        "GET",
        &path,
        "application/json",
        String::new(),
    )
    .await?;
    let rows = answer["invitees"].as_array().cloned().unwrap_or_default();
    let mut codes = std::collections::BTreeMap::new();
    let mut clicks = Vec::new();
    for (n, row) in rows.iter().enumerate() {
        let (Some(inviter), Some(ts)) = (row["inviter"].as_str(), row["ts"].as_i64()) else {
            continue;
        };
        if !codes.contains_key(inviter) {
            let invite = call(
                router,
                token,
                "POST",
                &format!("/v1/campaigns/{campaign}/invites"),
                "application/json",
                json!({ "identity": inviter }).to_string(),
            )
            .await?;
            let code = invite["code"].as_str().unwrap_or_default().to_string();
            codes.insert(inviter.to_string(), code);
        }
        let code = &codes[inviter];
        // The demo workspace keeps the default zone.
        let zone = siyu_automation::schedule::Tz::shanghai();
        for (visitor, at) in [
            (format!("visitor:demo{n:04}"), ts - 60),
            (format!("visitor:demo{n:04}b"), ts - 3 * 3600),
        ] {
            if let Some(e) = siyu_growth::fission::click_event(campaign, code, &visitor, at, &zone)
            {
                clicks.push(siyu_domain::wire::to_json(&e));
            }
        }
    }
    if !clicks.is_empty() {
        call(
            router,
            token,
            "POST",
            "/v1/events",
            "application/json",
            Value::Array(clicks).to_string(),
        )
        .await?;
    }
    Ok(())
}
