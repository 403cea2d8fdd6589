//! The pages a customer sees (`h5.rs`): the invite landing, the live code,
//! unsubscribe and the public links' errors as mobile pages for a browser
//! (content negotiation on `Accept`, JSON otherwise), every inserted value
//! escaped, and the QR PNGs decoding to the right links.

use crate::TestApp;
use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

/// What Chromium (and WeChat's in-app browser) sends on a navigation.
const BROWSER: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

/// A public GET with `accept` (none when `None`): status, headers, body.
async fn get(t: &TestApp, uri: &str, accept: Option<&str>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = Request::builder().uri(uri);
    if let Some(a) = accept {
        req = req.header(header::ACCEPT, a);
    }
    let r = siyu_server::app(t.state.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    let body = r.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, headers, body)
}

/// A page: its status and text, after the checks every page passes.
async fn page(t: &TestApp, uri: &str) -> (StatusCode, String) {
    let (s, h, body) = get(t, uri, Some(BROWSER)).await;
    assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8", "{uri}");
    let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.starts_with("default-src 'none'; img-src 'self'; style-src 'sha256-")
            && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(h[header::VARY], "Accept");
    assert_eq!(h[header::CACHE_CONTROL], "no-store");
    assert!(body.len() < 30 * 1024, "{uri}: {} bytes", body.len());
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.starts_with("<!doctype html><html lang=zh-CN>"),
        "{text}"
    );
    // No script, no resource from elsewhere.
    assert!(
        !text.contains("<script") && !text.contains("src=\"http"),
        "{text}"
    );
    (s, text)
}

fn json_of(h: &HeaderMap, body: &[u8]) -> Value {
    assert_eq!(h[header::CONTENT_TYPE], "application/json");
    serde_json::from_slice(body).unwrap()
}

/// The text of the one QR code in a PNG of `side` × `side` pixels.
fn qr_text(png_bytes: &[u8], side: u32) -> String {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("a png");
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).expect("it decodes");
    assert_eq!((info.width, info.height), (side, side));
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let mut img =
        rqrr::PreparedImage::prepare_from_greyscale(side as usize, side as usize, |x, y| {
            buf[(y * side as usize + x) * 3]
        });
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one qr code");
    grids[0].decode().expect("the qr code decodes").1
}

async fn qr(t: &TestApp, uri: &str) -> String {
    let (s, h, body) = get(t, uri, None).await;
    assert_eq!(
        s,
        StatusCode::OK,
        "{uri}: {}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(h[header::CONTENT_TYPE], "image/png");
    assert!(body.starts_with(b"\x89PNG\r\n\x1a\n"));
    qr_text(&body, 400)
}

fn public(t: &TestApp, path: &str) -> String {
    format!(
        "{}{path}",
        t.state.0.config.public_url.trim_end_matches('/')
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_is_a_page_for_a_browser_escaped_and_json_for_api_clients() {
    let t = TestApp::spawn().await;
    let (s, b) = t
        .send(
            "PUT",
            "/v1/campaigns/c1",
            json!({
                "name": "<script>alert(1)</script>双11",
                "tiers": [{"invites": 3, "reward": "coupon"}, {"invites": 10, "reward": "<b>gift</b>"}],
                "rewards": {"coupon": {"stock": 5}, "<b>gift</b>": {"stock": 1}},
                "landing": {"next": "add_friend", "text": "邀请好友 <img src=x onerror=alert(2)> 得好礼",
                            "url": "https://example.com/join?a=1&b=\"2\""}
            }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    t.post_events(r#"[{"ts": 1790000000, "identity": "wecom:boss13800138000", "type": "identify", "traits": {"name": "王芳<i>"}}]"#)
        .await;
    let (s, inv) = t
        .send(
            "POST",
            "/v1/campaigns/c1/invites",
            json!({"identity": "wecom:boss13800138000"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{inv}");
    let code = inv["code"].as_str().unwrap();
    let uri = format!("/i/c1/{code}");

    // API clients: no Accept, */*, application/json → the JSON as before.
    for accept in [None, Some("*/*"), Some("application/json")] {
        let (s, h, body) = get(&t, &uri, accept).await;
        assert_eq!(s, StatusCode::OK, "{accept:?}");
        let l = json_of(&h, &body);
        assert_eq!(l["inviter_name"], "王芳<i>", "{l}");
        assert_eq!(
            l["tiers"][0],
            json!({"invites": 3, "reward": "coupon"}),
            "{l}"
        );
        assert_eq!(l["qr"], format!("/i/c1/{code}/qr.png"), "{l}");
        assert_eq!(h[header::VARY], "Accept");
    }

    // A browser: the page, every user-supplied value escaped.
    let (s, html) = page(&t, &uri).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;双11"),
        "{html}"
    );
    assert!(html.contains("王芳&lt;i&gt; 邀请你参加"), "{html}");
    assert!(
        html.contains("邀请好友 &lt;img src=x onerror=alert(2)&gt; 得好礼"),
        "{html}"
    );
    assert!(html.contains("邀请 3 位好友") && html.contains("&lt;b&gt;gift&lt;/b&gt;"));
    assert!(html.contains("Invite 3 friends"), "{html}");
    assert!(
        html.contains("href=\"https://example.com/join?a=1&amp;b=&quot;2&quot;\""),
        "{html}"
    );
    for raw in ["<img", "<b>gift", "<i>", "wecom:", "13800138000", "boss"] {
        assert!(!html.contains(raw), "{raw} in {html}");
    }

    // The invite's QR code is its public link.
    assert_eq!(
        qr(&t, &format!("/i/c1/{code}/qr.png")).await,
        public(&t, &format!("/i/c1/{code}"))
    );
    assert_eq!(inv["link"], public(&t, &format!("/i/c1/{code}")));

    // A forged code: a page for the browser, the JSON error otherwise.
    let (s, html) = page(&t, "/i/c1/626f7373.000000000000").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(html.contains("链接无效") && html.contains("This link is not valid"));
    let (s, h, body) = get(&t, "/i/c1/626f7373.000000000000", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(json_of(&h, &body)["code"], "not_found");

    // Archived: 410, a friendly page.
    let (s, b) = t.send("DELETE", "/v1/campaigns/c1", "").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, html) = page(&t, &uri).await;
    assert_eq!(s, StatusCode::GONE);
    assert!(html.contains("活动已结束") && html.contains("This campaign is not open"));
    // The API message speaks to operators: not on the customer page.
    assert!(
        html.contains("Error code: gone") && !html.contains("/v1/"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "{html}");
    let (s, h, body) = get(&t, &uri, Some("application/json")).await;
    assert_eq!(s, StatusCode::GONE);
    assert_eq!(json_of(&h, &body)["code"], "gone");
    let (s, _, _) = get(&t, &format!("/i/c1/{code}/qr.png"), None).await;
    assert_eq!(s, StatusCode::GONE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_with_a_live_code_shows_the_live_codes_qr_as_the_next_step() {
    let t = TestApp::spawn().await;
    let (s, b) = t
        .send(
            "PUT",
            "/v1/campaigns/c2",
            json!({"name": "春季", "tiers": [{"invites": 1, "reward": "r"}], "rewards": {"r": {"stock": 1}},
                   "landing": {"next": "live_code", "live_code": "vip 1"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, inv) = t
        .send(
            "POST",
            "/v1/campaigns/c2/invites",
            json!({"identity": "wecom:x"}),
        )
        .await;
    let (s, html) = page(&t, &format!("/i/c2/{}", inv["code"].as_str().unwrap())).await;
    assert_eq!(s, StatusCode::OK);
    // The inviter has no name: never their identity.
    assert!(
        html.contains("好友邀请你参加") && !html.contains("wecom:x"),
        "{html}"
    );
    assert!(html.contains("src=\"/l/vip%201/qr.png\""), "{html}");
    assert!(html.contains("href=\"/l/vip%201\""), "{html}");
}

/// Operator `alice`, a group of `capacity` named with markup, a live code on it.
async fn live_code(t: &TestApp, capacity: u32) {
    let (s, b) = t
        .send("PUT", "/v1/operators/alice", json!({"name": "Alice"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = t
        .send(
            "PUT",
            "/v1/groups/g1",
            json!({"channel": "wecom", "name": "<script>上海</script>会员群", "capacity": capacity,
                   "url": "https://work.weixin.qq.com/g/g1?x=1&y=2"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = t
        .send(
            "PUT",
            "/v1/livecodes/spring",
            json!({"targets": [{"group": "g1"}], "backup_operator": "alice"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_code_is_a_page_with_the_targets_qr_and_its_errors_are_pages() {
    let t = TestApp::spawn().await;
    live_code(&t, 1).await;
    let (s, h, body) = get(&t, "/l/spring", Some("application/json")).await;
    assert_eq!(s, StatusCode::OK);
    let a = json_of(&h, &body);
    assert_eq!(a["target"], json!({"group": "g1"}), "{a}");
    assert!(a.get("name").is_none(), "the JSON is unchanged: {a}");

    let (s, html) = page(&t, "/l/spring").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        html.contains("&lt;script&gt;上海&lt;/script&gt;会员群"),
        "{html}"
    );
    assert!(html.contains("加入群聊"), "{html}");
    assert!(
        html.contains("src=\"/l/spring/qr.png?target=group%3Ag1\""),
        "{html}"
    );
    assert!(
        html.contains("href=\"https://work.weixin.qq.com/g/g1?x=1&amp;y=2\""),
        "{html}"
    );

    // The QR codes: the code's public link, and the target's own url.
    assert_eq!(qr(&t, "/l/spring/qr.png").await, public(&t, "/l/spring"));
    assert_eq!(
        qr(&t, "/l/spring/qr.png?target=group%3Ag1").await,
        "https://work.weixin.qq.com/g/g1?x=1&y=2"
    );
    // Only the code's own targets, only stored urls.
    let (s, h, body) = get(&t, "/l/spring/qr.png?target=group%3Aother", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(json_of(&h, &body)["message"]
        .as_str()
        .unwrap()
        .starts_with("target:"));
    let (s, _, _) = get(&t, "/l/spring/qr.png?target=operator%3Aalice", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "alice has no url");
    let (s, _, _) = get(&t, "/l/nope/qr.png", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Full (the one seat taken by a claimed newcomer, alice out of hours
    // is not the case: she takes them) → the backup operator's page.
    let (_, c) = t
        .send(
            "POST",
            "/v1/livecodes/spring/claims",
            json!({"identity": "wecom:n1"}),
        )
        .await;
    let (s, _, _) = get(
        &t,
        &format!("/l/spring?claim={}", c["claim"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, html) = page(&t, "/l/spring").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        html.contains("添加客服为好友") && html.contains("Alice"),
        "{html}"
    );
    // No url for alice: the code's own QR code, for another device.
    assert!(html.contains("src=\"/l/spring/qr.png\""), "{html}");

    // Archived: 410 page; JSON for API clients.
    let (s, b) = t.send("DELETE", "/v1/livecodes/spring", "").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, html) = page(&t, "/l/spring").await;
    assert_eq!(s, StatusCode::GONE);
    assert!(html.contains("二维码已失效") && html.contains("no longer active"));
    let (s, h, body) = get(&t, "/l/spring", None).await;
    assert_eq!(s, StatusCode::GONE);
    assert_eq!(json_of(&h, &body)["code"], "gone");
    let (s, _, _) = get(&t, "/l/spring/qr.png", None).await;
    assert_eq!(s, StatusCode::GONE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_live_code_is_a_409_page() {
    let t = TestApp::spawn().await;
    live_code(&t, 1).await;
    // Without a backup operator, one seat, taken.
    let (s, b) = t
        .send(
            "PUT",
            "/v1/livecodes/spring",
            json!({"targets": [{"group": "g1"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, c) = t
        .send(
            "POST",
            "/v1/livecodes/spring/claims",
            json!({"identity": "wecom:n1"}),
        )
        .await;
    let claimed = format!("/l/spring?claim={}", c["claim"].as_str().unwrap());
    assert_eq!(get(&t, &claimed, None).await.0, StatusCode::OK);
    let (s, html) = page(&t, "/l/spring").await;
    assert_eq!(s, StatusCode::CONFLICT, "{html}");
    assert!(html.contains("群已满") && html.contains("All groups are full"));
    let (s, h, body) = get(&t, "/l/spring", Some("*/*")).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(json_of(&h, &body)["code"], "conflict");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_and_content_links_answer_pages_to_browsers() {
    let t = TestApp::spawn().await;
    t.post_events(r#"[{"ts": 1790000000, "identity": "phone:13800138000", "type": "add_friend"}]"#)
        .await;
    let secret = t.state.0.link_secret.clone();
    let mut store = t.other_store();
    siyu_server::links::remember(store.as_mut(), &secret, "phone:13800138000").unwrap();
    drop(store);
    let token = siyu_server::links::sign(&secret, "unsubscribe", "phone:13800138000");

    let (s, html) = page(&t, &format!("/u/{token}")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("退订营销消息") && html.contains("Unsubscribe"));
    assert!(
        html.contains(&format!("<form method=post action=\"/u/{token}\">")),
        "{html}"
    );
    assert!(!html.contains("13800138000"), "{html}");
    // The button: the confirmation page.
    let r = siyu_server::app(t.state.clone())
        .oneshot(
            Request::builder()
                .method("POST")
                .uri(format!("/u/{token}"))
                .header(header::ACCEPT, BROWSER)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("已退订"));

    // A bad or unknown link: a page for the browser, JSON otherwise.
    for uri in ["/u/00.00", "/c/nope"] {
        let (s, html) = page(&t, uri).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{uri}");
        assert!(html.contains("链接无效"), "{uri}: {html}");
        let (s, h, body) = get(&t, uri, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(json_of(&h, &body)["code"], "not_found", "{uri}");
    }
    // A page's path value is escaped too.
    let (s, html) = page(&t, "/i/%3Cscript%3E/00.00").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(!html.contains("<script>"), "{html}");
}
