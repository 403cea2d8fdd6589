//! WeCom API calls the server makes through the outbox (durable, retried
//! by the dispatcher) that are not template messages: one [`Connector`]
//! on the channel [`CALLS_CHANNEL`] whose message's `data.call` names the
//! call.
//!
//! - `{"call": "mark_tag", "userid", "external_userid", "add": [name],
//!   "remove": [name]}`: siyu tag names become corp tag ids (the corp's
//!   list is read once and kept; a name it lacks is read again, then
//!   created with `add_corp_tag` when added — one being removed that
//!   WeCom does not have is not on the customer);
//! - `{"call": "send_welcome_msg", "welcome_code", "expires_at"}` with
//!   the text in `body` ([`super::welcome`]).
//!
//! Why a connector: the executor's outbox and the dispatcher give these
//! calls what messages have — committed before they are made, retried
//! with backoff on 5xx and "system busy", recorded with their verdict —
//! without a second queue.

use serde::Deserialize;
use std::sync::Arc;

use super::tags::CorpTags;
use super::WeComConnector;
use crate::{Connector, Delivery, OutboundMessage, SendError, SendFuture};

/// The channel name of [`WeComCalls`].
pub const CALLS_CHANNEL: &str = "wecom_api";

/// The calls connector, sharing the WeCom client (and its token).
pub struct WeComCalls {
    wecom: Arc<WeComConnector>,
    tags: tokio::sync::Mutex<Option<CorpTags>>,
}

#[derive(Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
enum Call {
    MarkTag {
        userid: String,
        external_userid: String,
        #[serde(default)]
        add: Vec<String>,
        #[serde(default)]
        remove: Vec<String>,
    },
    SendWelcomeMsg {
        welcome_code: String,
        expires_at: i64,
    },
}

fn epoch_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl WeComCalls {
    pub fn new(wecom: Arc<WeComConnector>) -> WeComCalls {
        WeComCalls {
            wecom,
            tags: tokio::sync::Mutex::new(None),
        }
    }

    /// The corp tag ids of `names`: read from WeCom when one is not
    /// known; `create` makes the missing ones.
    async fn tag_ids(&self, names: &[String], create: bool) -> Result<Vec<String>, SendError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut cache = self.tags.lock().await;
        let known = |c: &Option<CorpTags>| {
            c.as_ref()
                .is_some_and(|t| names.iter().all(|n| t.ids.contains_key(n)))
        };
        if !known(&cache) {
            *cache = Some(CorpTags::from_groups(&self.wecom.corp_tags().await?));
        }
        let tags = cache.get_or_insert_with(CorpTags::default);
        let mut ids = Vec::new();
        for name in names {
            match tags.ids.get(name) {
                Some(id) => ids.push(id.clone()),
                None if create => {
                    let id = self.wecom.add_corp_tag(name).await?;
                    tags.ids.insert(name.clone(), id.clone());
                    tags.names.insert(id.clone(), name.clone());
                    ids.push(id);
                }
                None => {}
            }
        }
        Ok(ids)
    }

    async fn make(&self, msg: &OutboundMessage) -> Result<Delivery, SendError> {
        let call: Call = serde_json::from_value(msg.data.clone()).map_err(|e| {
            SendError::Permanent(format!("wecom_api: not a call this connector makes: {e}"))
        })?;
        match call {
            Call::MarkTag {
                userid,
                external_userid,
                add,
                remove,
            } => {
                let add = self.tag_ids(&add, true).await?;
                let remove = self.tag_ids(&remove, false).await?;
                if add.is_empty() && remove.is_empty() {
                    return Ok(Delivery {
                        remote_id: None,
                        status: 200,
                    });
                }
                self.wecom
                    .mark_tag(&userid, &external_userid, &add, &remove)
                    .await?;
            }
            Call::SendWelcomeMsg {
                welcome_code,
                expires_at,
            } => {
                self.wecom
                    .send_welcome_msg(&welcome_code, &msg.body, expires_at, epoch_now())
                    .await?;
            }
        }
        Ok(Delivery {
            remote_id: None,
            status: 200,
        })
    }
}

impl Connector for WeComCalls {
    fn name(&self) -> &str {
        CALLS_CHANNEL
    }

    fn send<'a>(&'a self, msg: &'a OutboundMessage) -> SendFuture<'a> {
        Box::pin(self.make(msg))
    }
}
