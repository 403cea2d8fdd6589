//! Offline intent classification of a customer's message: a multinomial
//! naive Bayes model over normalized character 1–3-grams and ASCII word
//! tokens, trained at first use on the labelled corpus compiled into the
//! binary (`data/intents/train.tsv`, written by `data/intents/gen.py`; the
//! held-out `test.tsv` is only read by the tests and the
//! `intent_bench` example). No network, no downloaded weights, no I/O.
//!
//! The label set ([`Intent`]):
//!
//! | id | 中文 | what the customer wants |
//! | --- | --- | --- |
//! | `ask_material` | 求资料 | material, a link, details, pictures ("dd", "zl") |
//! | `price` | 询价 | the price, a discount ("jg", "贵吗") |
//! | `buy` | 购买意向 | to buy now ("拍了", "要一个") |
//! | `after_sales` | 售后 | returns, exchanges, broken goods, delivery |
//! | `complaint` | 投诉 | a complaint ("差评", "12315") |
//! | `opt_out` | 退订 | no more messages ("TD", "别发了") |
//! | `other` | 闲聊/其他 | greetings, thanks, chat, anything else |
//!
//! Normalization ([`normalize`]): full-width ASCII and the ideographic
//! space folded to ASCII, full-width CJK punctuation to its ASCII form,
//! lowercase, every digit run collapsed to `0`, emoji kept as characters
//! (variation selectors dropped), whitespace runs collapsed, repeated
//! punctuation collapsed. Features: each character 1-, 2- and 3-gram of
//! the normalized text between boundary marks, plus each ASCII word,
//! counted once per message (binarized). `confidence` is the model's
//! posterior, which naive Bayes tends to overstate.

use serde::Serialize;
use std::collections::HashMap;
use std::sync::OnceLock;

/// The training corpus (`label<TAB>text` lines).
pub const TRAIN_TSV: &str = include_str!("../data/intents/train.tsv");

pub use siyu_domain::intent::Intent;

/// One other intent and its probability.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Alternative {
    pub intent: Intent,
    pub p: f64,
}

/// A message's most likely intent, its probability and the others'.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Classification {
    pub intent: Intent,
    pub confidence: f64,
    /// The other intents with p ≥ 0.01, most likely first (at most 3).
    pub alternatives: Vec<Alternative>,
}

const N: usize = Intent::ALL.len();
/// Additive smoothing of the feature counts.
const ALPHA: f64 = 0.5;

/// A trained model: per feature, the log probability of it under each intent.
pub struct Model {
    log_prior: [f64; N],
    log_feature: HashMap<u64, [f32; N]>,
}

/// A corpus line that is not `label<TAB>text` with a known label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct CorpusError {
    pub line: usize,
    pub message: String,
}

/// The `(intent, text)` rows of a `label<TAB>text` corpus (blank lines and
/// `#` comments skipped).
pub fn parse_corpus(tsv: &str) -> Result<Vec<(Intent, &str)>, CorpusError> {
    let mut rows = Vec::new();
    for (i, line) in tsv.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |message: String| CorpusError {
            line: i + 1,
            message,
        };
        let (label, text) = line.split_once('\t').ok_or_else(|| err("no tab".into()))?;
        let intent =
            Intent::from_id(label).ok_or_else(|| err(format!("unknown label {label:?}")))?;
        rows.push((intent, text));
    }
    Ok(rows)
}

impl Model {
    /// Trains on `(intent, text)` rows.
    pub fn train<'a>(rows: impl IntoIterator<Item = (Intent, &'a str)>) -> Model {
        let mut docs = [0f64; N];
        let mut counts: HashMap<u64, [u32; N]> = HashMap::new();
        let mut totals = [0f64; N];
        let mut feats = Vec::new();
        for (intent, text) in rows {
            let c = intent as usize;
            docs[c] += 1.0;
            features(text, &mut feats);
            for &f in &feats {
                counts.entry(f).or_insert([0; N])[c] += 1;
                totals[c] += 1.0;
            }
        }
        let vocab = counts.len() as f64;
        let all_docs: f64 = docs.iter().sum();
        let mut log_prior = [0f64; N];
        for c in 0..N {
            log_prior[c] = ((docs[c] + 1.0) / (all_docs + N as f64)).ln();
        }
        let log_feature = counts
            .into_iter()
            .map(|(f, n)| {
                let mut lp = [0f32; N];
                for c in 0..N {
                    lp[c] = ((n[c] as f64 + ALPHA) / (totals[c] + ALPHA * vocab)).ln() as f32;
                }
                (f, lp)
            })
            .collect();
        Model {
            log_prior,
            log_feature,
        }
    }

    /// The intent of `text`. Features never seen in training are ignored;
    /// a text with none of them is `other`.
    pub fn classify(&self, text: &str) -> Classification {
        let mut feats = Vec::new();
        features(text, &mut feats);
        let mut score = self.log_prior;
        let mut known = 0;
        for f in &feats {
            if let Some(lp) = self.log_feature.get(f) {
                known += 1;
                for c in 0..N {
                    score[c] += lp[c] as f64;
                }
            }
        }
        if known == 0 {
            return Classification {
                intent: Intent::Other,
                confidence: 1.0,
                alternatives: Vec::new(),
            };
        }
        let max = score.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let mut p = score.map(|s| (s - max).exp());
        let sum: f64 = p.iter().sum();
        p.iter_mut().for_each(|x| *x /= sum);
        let mut ranked: Vec<Alternative> = Intent::ALL
            .into_iter()
            .map(|intent| Alternative {
                intent,
                p: p[intent as usize],
            })
            .collect();
        ranked.sort_by(|a, b| b.p.total_cmp(&a.p));
        let top = ranked.remove(0);
        ranked.retain(|a| a.p >= 0.01);
        ranked.truncate(3);
        Classification {
            intent: top.intent,
            confidence: top.p,
            alternatives: ranked,
        }
    }
}

/// The built-in model, trained on the compiled-in corpus at first use.
pub fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        Model::train(parse_corpus(TRAIN_TSV).expect("the compiled-in corpus parses"))
    })
}

/// The intent of a customer's message, by the built-in model.
pub fn classify(text: &str) -> Classification {
    model().classify(text)
}

/// `text` folded for the features: full-width forms to ASCII, lowercase,
/// digit runs to `0`, whitespace and repeated punctuation collapsed,
/// variation selectors dropped.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last: Option<char> = None;
    for ch in text.chars() {
        let c = fold(ch);
        let c = match c {
            Some(c) => c,
            None => continue,
        };
        let c = if c.is_ascii_digit() { '0' } else { c };
        if let Some(l) = last {
            let repeat = l == c && (c == ' ' || c == '0' || c.is_ascii_punctuation());
            if repeat {
                continue;
            }
        }
        for lc in c.to_lowercase() {
            out.push(lc);
        }
        last = Some(c);
    }
    out.trim().to_string()
}

fn fold(ch: char) -> Option<char> {
    let o = ch as u32;
    Some(match o {
        0xFF01..=0xFF5E => char::from_u32(o - 0xFEE0).unwrap_or(ch),
        0x3000 => ' ',
        0xFE00..=0xFE0F | 0x200B..=0x200D | 0xFEFF => return None,
        _ => match ch {
            '。' | '｡' => '.',
            '、' => ',',
            '～' | '〜' => '~',
            '“' | '”' | '「' | '」' => '"',
            '‘' | '’' => '\'',
            '【' => '[',
            '】' => ']',
            c if c.is_whitespace() => ' ',
            c => c,
        },
    })
}

/// FNV-1a over a feature's kind and characters.
fn hash(kind: u8, chars: &[char]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325 ^ kind as u64;
    h = h.wrapping_mul(0x100000001b3);
    for &c in chars {
        for b in (c as u32).to_le_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h
}

/// The distinct features of `text`, into `out` (cleared first).
fn features(text: &str, out: &mut Vec<u64>) {
    out.clear();
    let norm = normalize(text);
    let mut chars: Vec<char> = Vec::with_capacity(norm.len() + 2);
    chars.push('\u{2}');
    chars.extend(norm.chars());
    chars.push('\u{3}');
    for n in 1..=3usize {
        for w in chars.windows(n) {
            if n == 1 && (w[0] == '\u{2}' || w[0] == '\u{3}' || w[0] == ' ') {
                continue;
            }
            out.push(hash(n as u8, w));
        }
    }
    for word in norm
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let w: Vec<char> = word.chars().collect();
        out.push(hash(b'w', &w));
    }
    out.sort_unstable();
    out.dedup();
}

/// Per-intent precision, recall and F1 of `model` over `(intent, text)` rows.
pub fn evaluate<'a>(model: &Model, rows: impl IntoIterator<Item = (Intent, &'a str)>) -> Report {
    let mut tp = [0usize; N];
    let mut predicted = [0usize; N];
    let mut actual = [0usize; N];
    let mut errors = Vec::new();
    for (intent, text) in rows {
        let got = model.classify(text).intent;
        actual[intent as usize] += 1;
        predicted[got as usize] += 1;
        if got == intent {
            tp[intent as usize] += 1;
        } else {
            errors.push((intent, got, text.to_string()));
        }
    }
    let per_intent = Intent::ALL
        .into_iter()
        .map(|i| {
            let c = i as usize;
            let precision = ratio(tp[c], predicted[c]);
            let recall = ratio(tp[c], actual[c]);
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            Scores {
                intent: i,
                support: actual[c],
                precision,
                recall,
                f1,
            }
        })
        .collect::<Vec<_>>();
    let macro_f1 = per_intent.iter().map(|s| s.f1).sum::<f64>() / N as f64;
    let total: usize = actual.iter().sum();
    Report {
        accuracy: ratio(tp.iter().sum(), total),
        per_intent,
        macro_f1,
        errors,
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// One intent's scores on an evaluation set.
#[derive(Debug, Clone)]
pub struct Scores {
    pub intent: Intent,
    pub support: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// An evaluation: per-intent scores, macro F1, accuracy and the misses
/// (expected, got, text).
#[derive(Debug, Clone)]
pub struct Report {
    pub per_intent: Vec<Scores>,
    pub macro_f1: f64,
    pub accuracy: f64,
    pub errors: Vec<(Intent, Intent, String)>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "intent          support  precision  recall  f1")?;
        for s in &self.per_intent {
            writeln!(
                f,
                "{:<14} {:>8}  {:>9.3}  {:>6.3}  {:.3}",
                s.intent.id(),
                s.support,
                s.precision,
                s.recall,
                s.f1
            )?;
        }
        write!(
            f,
            "macro F1 {:.3}, accuracy {:.3}",
            self.macro_f1, self.accuracy
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_TSV: &str = include_str!("../data/intents/test.tsv");

    #[test]
    fn the_held_out_split_is_classified_well() {
        let train = parse_corpus(TRAIN_TSV).unwrap();
        let test = parse_corpus(TEST_TSV).unwrap();
        for i in Intent::ALL {
            assert!(train.iter().filter(|r| r.0 == i).count() >= 200, "{i:?}");
            assert!(test.iter().filter(|r| r.0 == i).count() >= 50, "{i:?}");
        }
        let train_texts: std::collections::HashSet<&str> = train.iter().map(|r| r.1).collect();
        assert!(
            test.iter().all(|r| !train_texts.contains(r.1)),
            "a test line is also in train"
        );
        let model = Model::train(train);
        let report = evaluate(&model, test);
        eprintln!("{report}");
        for (want, got, text) in &report.errors {
            eprintln!("  miss: {} → {}: {text}", want.id(), got.id());
        }
        assert!(report.macro_f1 >= MACRO_F1_FLOOR, "{report}");
    }

    /// Just below what the held-out split honestly gives (see the test's output).
    const MACRO_F1_FLOOR: f64 = 0.95;

    /// The held-out split comes from the generator that wrote the training
    /// split, so it flatters the model. `wild.tsv` is written by hand,
    /// apart from the generator, and never trained or tuned on: the score a
    /// shop should expect on messages phrased in ways the corpus did not
    /// foresee. Its floor is just below what it gives (see the output).
    #[test]
    fn hand_written_messages() {
        let wild = parse_corpus(include_str!("../data/intents/wild.tsv")).unwrap();
        for i in Intent::ALL {
            assert!(wild.iter().filter(|r| r.0 == i).count() >= 20, "{i:?}");
        }
        let report = evaluate(model(), wild);
        eprintln!("hand-written messages:\n{report}");
        for (want, got, text) in &report.errors {
            eprintln!("  miss: {} → {}: {text}", want.id(), got.id());
        }
        assert!(report.macro_f1 >= WILD_MACRO_F1_FLOOR, "{report}");
    }

    const WILD_MACRO_F1_FLOOR: f64 = 0.93;

    #[test]
    fn tricky_forms() {
        let cases = [
            ("ｄｄ", Intent::AskMaterial),
            ("zl发我一下🙏", Intent::AskMaterial),
            ("ＪＧ多少？", Intent::Price),
            ("这个多少钱😂", Intent::Price),
            ("How much is it?", Intent::Price),
            ("已拍，记得发货", Intent::Buy),
            ("快递到哪了？？", Intent::AfterSales),
            ("I want a refund, it's broken", Intent::AfterSales),
            ("再不处理我就打１２３１５", Intent::Complaint),
            ("TD", Intent::OptOut),
            ("ｕｎｓｕｂｓｃｒｉｂｅ", Intent::OptOut),
            ("哈哈哈😂", Intent::Other),
            ("", Intent::Other),
        ];
        for (text, want) in cases {
            let got = classify(text);
            assert_eq!(got.intent, want, "{text:?}: {got:?}");
            assert!(got.confidence > 0.0 && got.confidence <= 1.0);
            assert!(got.alternatives.iter().all(|a| a.intent != got.intent));
        }
    }

    #[test]
    fn normalization_folds_width_case_and_digits() {
        assert_eq!(normalize("ＤＤ　我！！"), "dd 我!");
        assert_eq!(normalize("打12315。"), "打0.");
        assert_eq!(normalize("❤️好"), "❤好");
    }

    #[test]
    fn labels_round_trip() {
        for i in Intent::ALL {
            assert_eq!(Intent::from_id(i.id()), Some(i));
            assert_eq!(serde_json::to_value(i).unwrap(), i.id());
        }
    }
}
