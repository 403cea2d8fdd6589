//! The language model by choice (`[ai]`): suggestions, summaries, the
//! fallback classifier and the daily budget, against a local server that
//! speaks OpenAI's `/v1/chat/completions` (plain and streamed) and can be
//! told to be slow, truncate its stream, fail or answer garbage. What it
//! received is kept, so the tests check that the person's phone, e-mail,
//! address and names never left.

use crate::{Backend, TestApp};
use axum::http::StatusCode;
use serde_json::{json, Value};
use siyu_server::llm::AiFile;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the fake model server answers its next requests.
#[derive(Clone)]
enum Mode {
    /// A chat completion whose content is made from the prompt it got.
    Answer(fn(&str) -> String),
    /// The same, as server-sent events in small chunks, ended by [DONE].
    Stream(fn(&str) -> String),
    /// Streamed chunks, then the connection closes: no [DONE], no finish_reason.
    Truncated,
    /// Sleeps this long before answering.
    Slow(Duration),
    /// A 200 whose body is this.
    Raw(&'static str),
    /// This status with an OpenAI-style error.
    Status(u16),
}

/// A request the fake got: its JSON body and its Authorization header.
type Received = (Value, Option<String>);

#[derive(Clone)]
struct Fake {
    mode: Arc<Mutex<Mode>>,
    /// Each request's body and Authorization header.
    got: Arc<Mutex<Vec<Received>>>,
}

impl Fake {
    async fn start() -> (Fake, String) {
        let fake = Fake {
            mode: Arc::new(Mutex::new(Mode::Raw("{}"))),
            got: Arc::default(),
        };
        let f = fake.clone();
        let app = axum::Router::new().route(
            "/v1/chat/completions",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let f = f.clone();
                    async move { f.answer(headers, body).await }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        (fake, format!("http://{addr}/v1"))
    }

    fn set(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    fn requests(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    async fn answer(
        &self,
        headers: axum::http::HeaderMap,
        body: axum::body::Bytes,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let auth = headers
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        self.got.lock().unwrap().push((v.clone(), auth));
        let prompt: String = v["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|m| m["content"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default();
        let mode = self.mode.lock().unwrap().clone();
        let sse = |body: String| {
            (
                [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
                body,
            )
                .into_response()
        };
        let chunk = |piece: &str, finish: Value| {
            format!(
                "data: {}\n\n",
                json!({"id": "c1", "object": "chat.completion.chunk", "model": "fake-qwen",
                       "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": finish}]})
            )
        };
        match mode {
            Mode::Answer(f) => axum::Json(json!({
                "id": "c1", "object": "chat.completion", "model": "fake-qwen",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": f(&prompt)}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 40, "completion_tokens": 2, "total_tokens": 42}
            }))
            .into_response(),
            Mode::Stream(f) => {
                let content = f(&prompt);
                let chars: Vec<char> = content.chars().collect();
                let mut out = String::from(": ping\n\n");
                for piece in chars.chunks(3) {
                    out.push_str(&chunk(&piece.iter().collect::<String>(), Value::Null));
                }
                out.push_str(&chunk("", json!("stop")));
                out.push_str("data: [DONE]\n\n");
                sse(out)
            }
            Mode::Truncated => sse(chunk("半句", Value::Null)),
            Mode::Slow(d) => {
                tokio::time::sleep(d).await;
                axum::Json(json!({"choices": [{"message": {"content": "late"}}]})).into_response()
            }
            Mode::Raw(body) => body.into_response(),
            Mode::Status(s) => (
                StatusCode::from_u16(s).unwrap(),
                axum::Json(json!({"error": {"message": "model overloaded", "type": "server_error"}})),
            )
                .into_response(),
        }
    }
}

fn ai_section(base_url: &str, extra: &str) -> AiFile {
    toml::from_str(&format!(
        "base_url = \"{base_url}\"\nmodel = \"qwen2.5:7b\"\napi_key = \"sk-test\"\n{extra}"
    ))
    .unwrap()
}

async fn app_with_ai(base_url: &str, extra: &str) -> TestApp {
    app_with_ai_on(Backend::Sqlite, base_url, extra).await
}

async fn app_with_ai_on(backend: Backend, base_url: &str, extra: &str) -> TestApp {
    let ai = ai_section(base_url, extra).check().unwrap();
    TestApp::spawn_with(backend, 1024 * 1024, move |c| c.ai = Some(ai)).await
}

/// The person's personal data, as the profile and the conversation carry it.
const PHONE: &str = "13812345678";
const EMAIL: &str = "fang.wang@example.com";
const NAME: &str = "王小芳";
const NICK: &str = "芳芳酱";
const STREET: &str = "文三路90号";

async fn seed(app: &TestApp) {
    let (s, b) = app
        .post_events(
            &json!([
                {"ts": 1790000000, "identity": "wecom:wm_fang", "type": "identify",
                 "traits": {"name": NAME, "nickname": NICK, "phone": PHONE, "email": EMAIL, "city": "杭州", "tags": ["vip"]}},
                {"ts": 1790000100, "identity": "wecom:wm_fang", "type": "comment",
                 "text": format!("你好，我是{NAME}，电话{PHONE}，邮箱{EMAIL}，什么时候发货？寄到浙江省杭州市西湖区{STREET}")},
                {"ts": 1790000200, "identity": "wecom:wm_fang", "type": "message_sent",
                 "properties": {"text": "王女士您好，我帮您查一下", "operator": "li"}},
                {"ts": 1790000300, "identity": "wecom:wm_fang", "type": "comment", "text": "芳芳酱急着用，麻烦快点发货"}
            ])
            .to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app
        .send(
            "PUT",
            "/v1/quick-replies/ship",
            json!({"title": "发货时间", "text": "下单后 48 小时内发货，顺丰包邮", "group": "售前"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app
        .send(
            "PUT",
            "/v1/quick-replies/refund",
            json!({"title": "退款流程", "text": "在订单页点「申请退款」", "group": "售后"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

/// A suggestion that uses the first name placeholder of the prompt, so
/// restoring it shows.
fn suggest_with_name(prompt: &str) -> String {
    let at = prompt
        .find("[NAME_")
        .expect("the prompt names the customer by placeholder");
    let end = at + prompt[at..].find(']').unwrap() + 1;
    let name = &prompt[at..end];
    json!({"suggestions": [format!("{name}您好，下单后 48 小时内发货"), "稍等，我帮您催一下仓库"]})
        .to_string()
}

fn assert_nothing_personal_left(fake: &Fake) {
    for (body, _) in fake.requests() {
        let text = body.to_string();
        for secret in [
            PHONE,
            EMAIL,
            NAME,
            NICK,
            STREET,
            "王女士",
            "fang.wang",
            "wm_fang",
        ] {
            assert!(!text.contains(secret), "{secret} left the machine: {text}");
        }
    }
}

async fn outgoing(app: &TestApp) -> usize {
    let (s, t) = app.get("/v1/conversations/wecom:wm_fang").await;
    assert_eq!(s, StatusCode::OK, "{t}");
    t["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "out")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suggestions_are_grounded_redacted_restored_marked_and_never_sent() {
    let (fake, url) = Fake::start().await;
    let app = app_with_ai(&url, "").await;
    seed(&app).await;
    let before = outgoing(&app).await;
    fake.set(Mode::Answer(suggest_with_name));

    let (s, b) = app
        .send(
            "POST",
            "/v1/ai/suggest",
            json!({"person": "wecom:wm_fang", "n": 2}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["ai"], true);
    assert_eq!(b["model"], "fake-qwen");
    assert_eq!(b["person"], "wecom:wm_fang");
    let sugg = b["suggestions"].as_array().unwrap();
    assert_eq!(sugg.len(), 2, "{b}");
    assert!(sugg.iter().all(|x| x["ai"] == true));
    let first = sugg[0]["text"].as_str().unwrap();
    assert!(!first.contains("[NAME_"), "placeholders restored: {first}");
    assert!(
        [NAME, NICK, "王女士"].iter().any(|n| first.starts_with(n)),
        "the customer's name is back: {first}"
    );
    assert_eq!(b["grounding"]["messages"], 3, "{b}");
    assert_eq!(b["grounding"]["quick_replies"], json!(["ship"]), "{b}");
    for kind in ["phone", "email", "name", "address"] {
        assert!(
            b["redacted"][kind].as_u64().unwrap_or(0) >= 1,
            "{kind}: {b}"
        );
    }
    assert_eq!(b["tokens"], 42);
    assert!(b["notice"].as_str().unwrap().contains("AI"));

    // What the model server got: the model, the key, the grounding, and no
    // personal data.
    let got = fake.requests();
    assert_eq!(got.len(), 1);
    let (body, auth) = &got[0];
    assert_eq!(auth.as_deref(), Some("Bearer sk-test"));
    assert_eq!(body["model"], "qwen2.5:7b");
    assert_eq!(body["stream"], false);
    let prompt = body.to_string();
    assert!(
        prompt.contains("下单后 48 小时内发货"),
        "quick reply offered: {prompt}"
    );
    assert!(
        !prompt.contains("申请退款"),
        "only the closest quick replies: {prompt}"
    );
    assert!(
        prompt.contains("vip") && prompt.contains("杭州"),
        "profile: {prompt}"
    );
    assert!(
        prompt.contains("[PHONE_1]") && prompt.contains("[EMAIL_1]"),
        "{prompt}"
    );
    assert_nothing_personal_left(&fake);

    // Nothing went to the customer.
    assert_eq!(outgoing(&app).await, before);

    let (s, u) = app.get("/v1/ai/usage").await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(u["configured"], true);
    assert_eq!(u["model"], "qwen2.5:7b");
    assert_eq!(
        (u["requests"].as_u64(), u["tokens"].as_u64()),
        (Some(1), Some(42)),
        "{u}"
    );

    // Bad bodies and unknown persons.
    for (body, field) in [
        (json!({"person": "wecom:wm_fang", "n": 9}), "n"),
        (json!({"person": ""}), "person"),
        (json!({}), "person"),
    ] {
        let (s, b) = app.send("POST", "/v1/ai/suggest", &body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {b}");
        assert!(b["message"].as_str().unwrap().contains(field), "{b}");
    }
    let (s, b) = app
        .send("POST", "/v1/ai/suggest", json!({"person": "wecom:nobody"}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, b) = app
        .post_events(r#"[{"ts": 1790000000, "identity": "wecom:silent", "type": "identify", "traits": {"name": "赵六"}}]"#)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app
        .send(
            "POST",
            "/v1/ai/summarize",
            json!({"person": "wecom:silent"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("no messages"),
        "{b}"
    );
    assert_eq!(fake.requests().len(), 1, "no call for refused requests");

    // The metrics count the call and its tokens.
    let (_, m) = app
        .call(
            "GET",
            "/metrics",
            None,
            "text/plain",
            axum::body::Body::empty(),
        )
        .await;
    let m = m.as_str().unwrap_or_default().to_string();
    assert!(
        m.contains("siyu_ai_calls_total{")
            && m.contains("kind=\"suggest\"")
            && m.contains("siyu_ai_tokens_total"),
        "{m}"
    );
}

fn summary_text(prompt: &str) -> String {
    let at = prompt.find("[NAME_").unwrap();
    let end = at + prompt[at..].find(']').unwrap() + 1;
    format!(
        "{}催发货，已答复正在查询；待确认发货时间。",
        &prompt[at..end]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_summaries_are_read_and_a_truncated_stream_is_a_clear_502() {
    let (fake, url) = Fake::start().await;
    let app = app_with_ai(&url, "stream = true").await;
    seed(&app).await;
    fake.set(Mode::Stream(summary_text));
    let (s, b) = app
        .send(
            "POST",
            "/v1/ai/summarize",
            json!({"person": "wecom:wm_fang"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["ai"], true);
    assert_eq!(b["model"], "fake-qwen");
    let summary = b["summary"].as_str().unwrap();
    assert!(
        summary.ends_with("催发货，已答复正在查询；待确认发货时间。"),
        "{summary}"
    );
    assert!(!summary.contains("[NAME_"), "{summary}");
    assert!(
        summary.starts_with(NAME) || summary.starts_with(NICK) || summary.starts_with("王女士"),
        "{summary}"
    );
    assert_eq!(b["messages"], 3);
    let got = fake.requests();
    assert_eq!(got[0].0["stream"], true);
    assert_nothing_personal_left(&fake);
    // No usage in the stream: the tokens are estimated, not zero.
    assert!(b["tokens"].as_u64().unwrap() > 0, "{b}");

    // A server that ignores `stream: true` and answers one JSON body is read too.
    fake.set(Mode::Answer(summary_text));
    let (s, b) = app
        .send(
            "POST",
            "/v1/ai/summarize",
            json!({"person": "wecom:wm_fang"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["tokens"], 42, "{b}");

    fake.set(Mode::Truncated);
    let (s, b) = app
        .send(
            "POST",
            "/v1/ai/summarize",
            json!({"person": "wecom:wm_fang"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{b}");
    assert_eq!(b["code"], "upstream");
    assert!(
        b["message"].as_str().unwrap().contains("stream ended"),
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_failing_and_garbage_answers_are_clear_errors_without_hanging() {
    let (fake, url) = Fake::start().await;
    let app = app_with_ai(&url, "timeout_ms = 400").await;
    seed(&app).await;
    let suggest = || app.send("POST", "/v1/ai/suggest", json!({"person": "wecom:wm_fang"}));

    fake.set(Mode::Slow(Duration::from_secs(10)));
    let t0 = Instant::now();
    let (s, b) = suggest().await;
    assert_eq!(s, StatusCode::GATEWAY_TIMEOUT, "{b}");
    assert_eq!(b["code"], "upstream_timeout");
    assert!(b["message"].as_str().unwrap().contains("timeout_ms"), "{b}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());

    for (mode, want) in [
        (Mode::Raw("<html>502 Bad Gateway</html>"), "not JSON"),
        (Mode::Raw("{\"object\": \"list\"}"), "not a chat completion"),
        (Mode::Status(500), "HTTP 500: model overloaded"),
        (Mode::Status(401), "api_key"),
        (Mode::Answer(|_| "好的！".into()), "not what was asked for"),
        (Mode::Answer(|_| "".into()), "answered nothing"),
        (Mode::Answer(|_| "啊".repeat(20_000)), "larger than"),
    ] {
        fake.set(mode);
        let (s, b) = suggest().await;
        assert_eq!(s, StatusCode::BAD_GATEWAY, "{want}: {b}");
        assert_eq!(b["code"], "upstream");
        assert!(b["message"].as_str().unwrap().contains(want), "{want}: {b}");
    }

    // An event stream nobody asked for (stream = false) is read as one.
    fake.set(Mode::Stream(|_| "{\"suggestions\": [\"好的\"]}".into()));
    let (s, b) = suggest().await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["suggestions"][0]["text"], "好的");

    // Nothing listening: a connect error, quickly.
    let app2 = app_with_ai("http://127.0.0.1:9/v1", "timeout_ms = 2000").await;
    seed(&app2).await;
    let (s, b) = app2
        .send(
            "POST",
            "/v1/ai/summarize",
            json!({"person": "wecom:wm_fang"}),
        )
        .await;
    assert!(
        s == StatusCode::BAD_GATEWAY || s == StatusCode::GATEWAY_TIMEOUT,
        "{s} {b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_budget_refuses_once_spent_naming_it() {
    the_daily_budget_refuses_once_spent_naming_it_on(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_budget_refuses_once_spent_naming_it_on_postgres() {
    if crate::pg_url().is_some() {
        the_daily_budget_refuses_once_spent_naming_it_on(Backend::Postgres).await;
    }
}

async fn the_daily_budget_refuses_once_spent_naming_it_on(backend: Backend) {
    let (fake, url) = Fake::start().await;
    let app = app_with_ai_on(backend, &url, "daily_budget_requests = 2").await;
    seed(&app).await;
    fake.set(Mode::Answer(|_| "{\"suggestions\": [\"好的\"]}".into()));
    for _ in 0..2 {
        let (s, b) = app
            .send("POST", "/v1/ai/suggest", json!({"person": "wecom:wm_fang"}))
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let (s, b) = app
        .send(
            "POST",
            "/v1/ai/summarize",
            json!({"person": "wecom:wm_fang"}),
        )
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{b}");
    assert_eq!(b["code"], "ai_budget_exhausted");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("daily_budget_requests"),
        "{b}"
    );
    assert_eq!(fake.requests().len(), 2, "the refused call never left");
    let (_, u) = app.get("/v1/ai/usage").await;
    assert_eq!(u["requests"], 2);
    assert_eq!(u["budget"]["requests_per_day"], 2);

    // Tokens: one call of 42 spends a budget of 40.
    let (fake, url) = Fake::start().await;
    let app = app_with_ai_on(backend, &url, "daily_budget_tokens = 40").await;
    seed(&app).await;
    fake.set(Mode::Answer(|_| "{\"suggestions\": [\"好的\"]}".into()));
    let (s, _) = app
        .send("POST", "/v1/ai/suggest", json!({"person": "wecom:wm_fang"}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = app
        .send("POST", "/v1/ai/suggest", json!({"person": "wecom:wm_fang"}))
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{b}");
    assert!(b["message"].as_str().unwrap().contains("40 tokens"), "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ai_the_routes_say_how_to_configure_and_classify_stays_offline() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    for path in ["/v1/ai/suggest", "/v1/ai/summarize"] {
        let (s, b) = app
            .send("POST", path, json!({"person": "wecom:wm_fang"}))
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{path}: {b}");
        assert_eq!(b["code"], "ai_not_configured");
        let m = b["message"].as_str().unwrap();
        assert!(m.contains("[ai]") && m.contains("base_url"), "{m}");
    }
    let (s, u) = app.get("/v1/ai/usage").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(u["configured"], false);
    assert_eq!(u["requests"], 0);
    let (s, b) = app
        .send("POST", "/v1/ai/classify", json!({"text": "嗯"}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["source"], "offline");
    assert_eq!(b["ai"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classify_asks_the_model_only_below_min_confidence() {
    let sure = "这个多少钱？";
    let unsure = format!("嗯 那个 {PHONE}");
    let (c_sure, c_unsure) = (
        siyu_automation::intent::classify(sure).confidence,
        siyu_automation::intent::classify(&unsure).confidence,
    );
    assert!(c_unsure < c_sure, "{c_unsure} < {c_sure}");
    let threshold = (c_sure + c_unsure) / 2.0;
    let (fake, url) = Fake::start().await;
    let app = app_with_ai(&url, &format!("min_confidence = {threshold}")).await;
    fake.set(Mode::Answer(|_| {
        "{\"intent\": \"complaint\", \"confidence\": 0.8}".into()
    }));

    let (s, b) = app
        .send("POST", "/v1/ai/classify", json!({"text": sure}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["source"], "offline");
    assert_eq!(b["intent"], "price");
    assert!(
        fake.requests().is_empty(),
        "a confident answer asks no model"
    );

    let (s, b) = app
        .send("POST", "/v1/ai/classify", json!({"text": unsure}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["source"], "llm");
    assert_eq!(b["ai"], true);
    assert_eq!(b["intent"], "complaint");
    assert_eq!(b["confidence"], 0.8);
    assert_eq!(b["model"], "fake-qwen");
    let got = fake.requests();
    assert_eq!(got.len(), 1);
    assert!(!got[0].0.to_string().contains(PHONE), "{}", got[0].0);

    // The model failing leaves the offline answer, saying why.
    fake.set(Mode::Raw("garbage"));
    let (s, b) = app
        .send("POST", "/v1/ai/classify", json!({"text": unsure}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["source"], "offline");
    assert!(b["llm_error"].as_str().unwrap().contains("not JSON"), "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_redacted_is_configured() {
    let (fake, url) = Fake::start().await;
    let app = app_with_ai(
        &url,
        "redact = [\"phone\"]\nredact_patterns = [\"fang\\\\.wang@[a-z.]+\"]",
    )
    .await;
    seed(&app).await;
    fake.set(Mode::Answer(|_| "{\"suggestions\": [\"好的\"]}".into()));
    let (s, b) = app
        .send("POST", "/v1/ai/suggest", json!({"person": "wecom:wm_fang"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["redacted"], json!({"phone": 1, "pattern": 1}), "{b}");
    let prompt = fake.requests()[0].0.to_string();
    assert!(
        !prompt.contains(PHONE) && !prompt.contains(EMAIL),
        "{prompt}"
    );
    assert!(prompt.contains("[REDACTED_1]"), "{prompt}");
    // Names and addresses are not in this list: they leave as written.
    assert!(prompt.contains(NAME) && prompt.contains(STREET), "{prompt}");
    let (_, u) = app.get("/v1/ai/usage").await;
    assert_eq!(u["redact"], json!(["phone"]));
}
