//! The intents a customer's message can have, and where a message carries
//! its intent: the vocabulary shared by the classifier
//! (`siyu_automation::intent`), the engine's segment condition
//! (`intent(last 7d) = "price"`), auto-reply rules, journeys and the
//! server's ingest annotation. It lives here, in the crate every other one
//! depends on, so the id set is written once.
//!
//! An inbound message is a `comment` event; its intent is the string
//! property [`PROPERTY`] (an id of [`Intent`]), with the classifier's
//! posterior in [`CONFIDENCE_PROPERTY`] when siyu classified it (a
//! caller-supplied intent has no confidence unless the caller gives one).

use serde::{Deserialize, Serialize};

use crate::{Event, EventType};

/// The comment property holding the intent id.
pub const PROPERTY: &str = "intent";
/// The comment property holding the classifier's confidence (0..1).
pub const CONFIDENCE_PROPERTY: &str = "intent_confidence";

/// What a customer's message asks for.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// 求资料: material, a link, details, pictures.
    AskMaterial,
    /// 询价: the price.
    Price,
    /// 购买意向: ready to buy.
    Buy,
    /// 售后: returns, exchanges, broken goods, delivery.
    AfterSales,
    /// 投诉: a complaint.
    Complaint,
    /// 退订: no more messages.
    OptOut,
    /// 闲聊/其他: anything else.
    Other,
}

impl Intent {
    /// Every intent, in a fixed order (its index is `intent as usize`).
    pub const ALL: [Intent; 7] = [
        Intent::AskMaterial,
        Intent::Price,
        Intent::Buy,
        Intent::AfterSales,
        Intent::Complaint,
        Intent::OptOut,
        Intent::Other,
    ];

    /// The id used in the corpus and on the wire.
    pub fn id(self) -> &'static str {
        match self {
            Intent::AskMaterial => "ask_material",
            Intent::Price => "price",
            Intent::Buy => "buy",
            Intent::AfterSales => "after_sales",
            Intent::Complaint => "complaint",
            Intent::OptOut => "opt_out",
            Intent::Other => "other",
        }
    }

    /// Its Chinese name.
    pub fn name_zh(self) -> &'static str {
        match self {
            Intent::AskMaterial => "求资料",
            Intent::Price => "询价",
            Intent::Buy => "购买意向",
            Intent::AfterSales => "售后",
            Intent::Complaint => "投诉",
            Intent::OptOut => "退订",
            Intent::Other => "闲聊/其他",
        }
    }

    /// The intent with this id.
    pub fn from_id(id: &str) -> Option<Intent> {
        Intent::ALL.into_iter().find(|i| i.id() == id)
    }

    /// The intent with this id or Chinese name (`"price"` or `"询价"`):
    /// what people write in segments and rules.
    pub fn parse(s: &str) -> Option<Intent> {
        Intent::from_id(s).or_else(|| Intent::ALL.into_iter().find(|i| i.name_zh() == s))
    }

    /// `ask_material, price, …` for error messages.
    pub fn ids() -> String {
        Intent::ALL.map(|i| i.id()).join(", ")
    }

    /// The intent recorded on an inbound message: a `comment` whose
    /// `properties.intent` is a known id (anything else: none).
    pub fn of_event(e: &Event) -> Option<Intent> {
        if e.event_type != EventType::Comment {
            return None;
        }
        let v = e.properties.as_ref()?.get(PROPERTY)?;
        Intent::from_id(v.as_str()?)
    }
}

/// Checks what a caller says about a comment's intent, before it is
/// stored: `properties.intent` must be an intent (its id, or its Chinese
/// name, which is stored as the id) and `properties.intent_confidence` a
/// number from 0 to 1. Other event types' properties are free-form.
pub fn check_properties(
    ty: EventType,
    props: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<(), crate::WireError> {
    use serde_json::Value;
    if ty != EventType::Comment {
        return Ok(());
    }
    if let Some(v) = props.get_mut(PROPERTY) {
        match v.as_str().and_then(Intent::parse) {
            Some(i) => *v = Value::String(i.id().to_string()),
            None => {
                return Err(crate::WireError::new(
                    "properties.intent",
                    format!(
                        "{v} is not an intent: one of {} (or its Chinese name, e.g. 询价); leave it out and siyu classifies the text",
                        Intent::ids()
                    ),
                ))
            }
        }
    }
    if let Some(v) = props.get(CONFIDENCE_PROPERTY) {
        if !v.as_f64().is_some_and(|c| (0.0..=1.0).contains(&c)) {
            return Err(crate::WireError::new(
                "properties.intent_confidence",
                format!("{v} must be a number from 0 to 1"),
            ));
        }
    }
    Ok(())
}

/// Reads an intent by id or Chinese name; unknown names are refused
/// naming the ids.
pub fn deserialize_lenient<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Intent, D::Error> {
    let s = String::deserialize(d)?;
    Intent::parse(&s).ok_or_else(|| {
        serde::de::Error::custom(format_args!(
            "unknown intent {s:?}: one of {} (or its Chinese name, e.g. 询价)",
            Intent::ids()
        ))
    })
}

/// [`deserialize_lenient`] for a list (`["price", "购买意向"]`).
pub fn deserialize_lenient_vec<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<Intent>, D::Error> {
    #[derive(Deserialize)]
    struct One(#[serde(deserialize_with = "deserialize_lenient")] Intent);
    Ok(Vec::<One>::deserialize(d)?
        .into_iter()
        .map(|o| o.0)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_chinese_names_read_back() {
        for i in Intent::ALL {
            assert_eq!(Intent::parse(i.id()), Some(i));
            assert_eq!(Intent::parse(i.name_zh()), Some(i));
            assert_eq!(Intent::ALL[i as usize], i);
        }
        assert_eq!(Intent::parse("询价"), Some(Intent::Price));
        assert_eq!(Intent::parse("pricey"), None);
    }

    #[test]
    fn a_comment_s_stated_intent_is_checked_and_kept_as_its_id() {
        let mut ok = serde_json::json!({"intent": "询价", "intent_confidence": 0.5});
        let ok = ok.as_object_mut().unwrap();
        check_properties(EventType::Comment, ok).unwrap();
        assert_eq!(ok["intent"], "price");
        for bad in [
            serde_json::json!({"intent": "pricey"}),
            serde_json::json!({"intent": 3}),
        ] {
            let mut bad = bad;
            let err =
                check_properties(EventType::Comment, bad.as_object_mut().unwrap()).unwrap_err();
            assert_eq!(err.field, "properties.intent");
            assert!(err.message.contains("ask_material"), "{}", err.message);
        }
        let mut bad = serde_json::json!({"intent": "buy", "intent_confidence": 2});
        let err = check_properties(EventType::Comment, bad.as_object_mut().unwrap()).unwrap_err();
        assert_eq!(err.field, "properties.intent_confidence");
        // Another type's `intent` is its own business.
        let mut free = serde_json::json!({"intent": "anything"});
        check_properties(EventType::Custom, free.as_object_mut().unwrap()).unwrap();
    }
}
