//! Prints how long keyword matching takes per message for 50 rules (a
//! sanity check, not a benchmark harness): `cargo run --release -p
//! siyu-automation --example keyword_speed`.

use std::time::Instant;

use siyu_automation::keyword::{Matcher, Rule, RuleSet};

fn main() {
    let words = [
        "多少钱",
        "价格",
        "求资料",
        "资料",
        "优惠",
        "包邮",
        "怎么买",
        "链接",
        "尺码",
        "颜色",
        "发货",
        "退货",
        "退款",
        "客服",
        "加微信",
        "vip",
        "会员",
        "积分",
        "折扣",
        "团购",
    ];
    let rules: Vec<Rule> = (0..50)
        .map(|i| Rule {
            id: format!("r{i}"),
            intents: vec![],
            matcher: Some(match i % 5 {
                0 => Matcher::Regex(format!("{}|{}", words[i % 20], words[(i + 7) % 20])),
                1 => Matcher::AnyOf(vec![
                    format!("{}{i}", words[i % 20]),
                    words[(i + 3) % 20].to_string(),
                ]),
                _ => Matcher::Contains(format!("{}{}", words[i % 20], i)),
            }),
            channels: if i % 3 == 0 {
                vec!["douyin".into()]
            } else {
                vec![]
            },
            event_types: vec!["comment".into(), "message".into()],
            priority: (i % 7) as i32,
            reply_template: None,
            tags: vec![],
            create_lead: false,
            cooldown_secs: 600,
            assign_operator: None,
            enroll_journey: None,
            enabled: true,
        })
        .collect();
    let set = match RuleSet::compile(rules) {
        Ok(set) => set,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let messages: Vec<String> = (0..1_000)
        .map(|i| match i % 4 {
            0 => format!("主播你好，这个{}啊？我想要 {i} 件", words[i % 20]),
            1 => "今天直播间好热闹，主播唱歌真好听，支持一下！！！".to_string(),
            2 => format!("ＶＩＰ 会员 有没有{}，发货快吗", words[(i * 3) % 20]),
            _ => "hello".to_string(),
        })
        .collect();
    let rounds = 200;
    let mut matched = 0usize;
    let start = Instant::now();
    for _ in 0..rounds {
        for (i, m) in messages.iter().enumerate() {
            let channel = if i % 2 == 0 { "douyin" } else { "wechat" };
            matched += set.matches(channel, "comment", m).len();
        }
    }
    let elapsed = start.elapsed();
    let n = (rounds * messages.len()) as f64;
    println!(
        "50 rules: {:.0} ns/message over {} messages ({} matches)",
        elapsed.as_nanos() as f64 / n,
        n,
        matched
    );
}
