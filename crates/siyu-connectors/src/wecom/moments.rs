//! WeCom's customer Moments (客户朋友圈): publishing a post that chosen
//! customers see from chosen corp members, and reading back who liked and
//! commented on it.
//!
//! Why here: a Moments SOP plans posts in siyu (text, a link from the
//! content library, images already uploaded as WeCom media), publishes
//! them through WeCom and puts the engagement on each customer's
//! timeline. This module is the request and answer shapes and the pure
//! mapping of engagement to events; the planning and the guardrails are
//! the server's and siyu-growth's.
//!
//! Shapes (客户联系 → 客户朋友圈):
//! - `POST /cgi-bin/externalcontact/add_moment_task` with `{"text":
//!   {"content"}, "attachments": [{"msgtype": "image", "image":
//!   {"media_id"}} | {"msgtype": "link", "link": {"title", "url",
//!   "media_id"?}}], "visible_range": {"sender_list": {"user_list":
//!   [userid]}, "external_contact_list": {"tag_list": [tag id]}}}` →
//!   `{errcode, errmsg, jobid}`: publishing is asynchronous;
//! - `GET /cgi-bin/externalcontact/get_moment_task_result?jobid=` →
//!   `{status: 1 (running) | 2 (started) | 3 (done), type:
//!   "add_moment_task", result: {errcode, errmsg, moment_id,
//!   invalid_sender_list: {user_list}, invalid_external_contact_list:
//!   {tag_list}}}`;
//! - `POST /cgi-bin/externalcontact/get_moment_list` `{start_time,
//!   end_time, filter_type, cursor, limit}` → `{moment_list: [{moment_id,
//!   creator, create_time, create_type: 0 (corp) | 1 (a member's own)}],
//!   next_cursor}`; `POST /cgi-bin/externalcontact/get_moment_task
//!   {moment_id}` → `{task_list: [{userid, publish_status}]}`: the posts
//!   made in WeCom itself, and who published a corp one;
//! - `POST /cgi-bin/externalcontact/get_moment_comments` `{moment_id,
//!   userid}` → `{comment_list: [{external_userid | userid, create_time}],
//!   like_list: [{external_userid | userid, create_time}]}` (the comments'
//!   text is not given).
//!
//! At most [`MAX_ATTACHMENTS`] attachments (WeCom: 9 images, or one link
//! or video), text of at most [`MAX_TEXT_CHARS`] characters; both are
//! checked here before any call.

use serde_json::{json, Value};

use super::{str_field, WeComConnector};
use crate::SendError;

/// The prefix of the corp tag siyu gives each post's audience
/// (`siyu-moment-<plan>`): a tag of siyu's own making, never mirrored back
/// into siyu's tags by the customer-edit callback (`sync::tags_event`).
pub const MOMENT_TAG_PREFIX: &str = "siyu-moment-";

/// The corp tag of plan `id`'s audience.
pub fn moment_tag_name(id: &str) -> String {
    format!("{MOMENT_TAG_PREFIX}{id}")
}

/// WeCom's limits on one post.
pub const MAX_TEXT_CHARS: usize = 2000;
pub const MAX_ATTACHMENTS: usize = 9;

/// What a post carries besides its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attachment {
    /// An image uploaded to WeCom (`media/upload_attachment`).
    Image { media_id: String },
    /// A link card: a content-library item's title and tracked URL.
    Link {
        title: String,
        url: String,
        media_id: Option<String>,
    },
}

/// One post to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moment {
    pub text: String,
    pub attachments: Vec<Attachment>,
    /// The corp members whose customers see it (empty: every member).
    pub senders: Vec<String>,
    /// WeCom corp tag ids of the customers who see it (empty: all).
    pub tag_ids: Vec<String>,
}

impl Moment {
    /// The `add_moment_task` body; a fault names what to fix.
    pub fn body(&self) -> Result<Value, SendError> {
        let chars = self.text.chars().count();
        if chars > MAX_TEXT_CHARS {
            return Err(SendError::Permanent(format!(
                "wecom moment: text is {chars} characters, WeCom takes {MAX_TEXT_CHARS}"
            )));
        }
        if self.text.trim().is_empty() && self.attachments.is_empty() {
            return Err(SendError::Permanent(
                "wecom moment: give a text or an attachment".into(),
            ));
        }
        let links = self
            .attachments
            .iter()
            .filter(|a| matches!(a, Attachment::Link { .. }))
            .count();
        if self.attachments.len() > MAX_ATTACHMENTS || (links > 0 && self.attachments.len() > 1) {
            return Err(SendError::Permanent(format!(
                "wecom moment: at most {MAX_ATTACHMENTS} images, or one link alone"
            )));
        }
        let attachments: Vec<Value> = self
            .attachments
            .iter()
            .map(|a| match a {
                Attachment::Image { media_id } => {
                    json!({"msgtype": "image", "image": {"media_id": media_id}})
                }
                Attachment::Link {
                    title,
                    url,
                    media_id,
                } => {
                    let mut link = json!({"title": title, "url": url});
                    if let Some(m) = media_id {
                        link["media_id"] = json!(m);
                    }
                    json!({"msgtype": "link", "link": link})
                }
            })
            .collect();
        let mut body = json!({"text": {"content": self.text}});
        if !attachments.is_empty() {
            body["attachments"] = json!(attachments);
        }
        let mut range = json!({});
        if !self.senders.is_empty() {
            range["sender_list"] = json!({"user_list": self.senders});
        }
        if !self.tag_ids.is_empty() {
            range["external_contact_list"] = json!({"tag_list": self.tag_ids});
        }
        if range.as_object().is_some_and(|o| !o.is_empty()) {
            body["visible_range"] = range;
        }
        Ok(body)
    }
}

/// Where a publishing job is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskResult {
    /// Still running (status 1 or 2).
    Running,
    /// Done: the moment's id, and the senders and tags WeCom refused.
    Published {
        moment_id: String,
        invalid_senders: Vec<String>,
        invalid_tags: Vec<String>,
    },
    /// Done with an error (errcode and message).
    Failed(String),
}

fn strings(v: &Value, outer: &str, inner: &str) -> Vec<String> {
    v.get(outer)
        .and_then(|o| o.get(inner))
        .and_then(|l| l.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads a `get_moment_task_result` answer.
pub fn task_result(v: &Value) -> Result<TaskResult, SendError> {
    match v.get("status").and_then(Value::as_i64) {
        Some(1) | Some(2) => Ok(TaskResult::Running),
        Some(3) => {
            let r = v.get("result").cloned().unwrap_or(Value::Null);
            let code = r.get("errcode").and_then(Value::as_i64).unwrap_or(0);
            if code != 0 {
                return Ok(TaskResult::Failed(format!(
                    "errcode {code}: {}",
                    r.get("errmsg").and_then(Value::as_str).unwrap_or("")
                )));
            }
            let moment_id = str_field(&r, "moment_id").ok_or_else(|| {
                SendError::Permanent("wecom: get_moment_task_result answered no moment_id".into())
            })?;
            Ok(TaskResult::Published {
                moment_id,
                invalid_senders: strings(&r, "invalid_sender_list", "user_list"),
                invalid_tags: strings(&r, "invalid_external_contact_list", "tag_list"),
            })
        }
        other => Err(SendError::Permanent(format!(
            "wecom: get_moment_task_result answered status {other:?}"
        ))),
    }
}

/// One reaction of a customer to a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaction {
    pub external_userid: String,
    /// `like` or `comment`.
    pub kind: &'static str,
    pub at: i64,
}

/// The customers' likes and comments in a `get_moment_comments` answer
/// (reactions of corp members, which carry `userid`, are left out).
pub fn reactions(v: &Value) -> Vec<Reaction> {
    let mut out = Vec::new();
    for (list, kind) in [("like_list", "like"), ("comment_list", "comment")] {
        for r in v.get(list).and_then(Value::as_array).into_iter().flatten() {
            let (Some(who), Some(at)) = (
                r.get("external_userid")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty()),
                r.get("create_time").and_then(Value::as_i64),
            ) else {
                continue;
            };
            out.push(Reaction {
                external_userid: who.to_string(),
                kind,
                at,
            });
        }
    }
    out.sort_by(|a, b| (a.at, &a.external_userid, a.kind).cmp(&(b.at, &b.external_userid, b.kind)));
    out
}

/// The event a reaction becomes on the customer's timeline: a custom
/// `moment_like` or `moment_comment` on their `wecom:` identity, with the
/// moment's id; its id is the reaction's own, so reading the comments
/// again adds nothing.
pub fn reaction_event(moment_id: &str, r: &Reaction) -> Value {
    json!({
        "id": super::callback::event_id(&["moment", moment_id, r.kind, &r.external_userid, &r.at.to_string()]),
        "ts": r.at,
        "identity": format!("wecom:{}", r.external_userid),
        "channel": "wecom",
        "type": "custom",
        "name": format!("moment_{}", r.kind),
        "properties": {"moment_id": moment_id},
    })
}

/// A post `get_moment_list` lists: one siyu published, or one an operator
/// (`personal`) or the corp's admin made in WeCom itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedMoment {
    pub moment_id: String,
    /// Who made it: the member for a personal post, the admin for a corp one.
    pub creator: String,
    pub created: i64,
    /// `create_type` 1: a member's own post; else the corp's (published by
    /// the members `get_moment_task` names).
    pub personal: bool,
}

/// Longest page `get_moment_list` gives.
pub const MOMENT_LIST_PAGE: u32 = 20;

/// The posts of a `get_moment_list` answer and the cursor of the next
/// page (none when this was the last). `create_time` comes as a number or
/// as a string of one.
pub fn moment_list(v: &Value) -> (Vec<ListedMoment>, Option<String>) {
    let number = |x: Option<&Value>| {
        x.and_then(|x| {
            x.as_i64()
                .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
        })
    };
    let list = v
        .get("moment_list")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| {
            Some(ListedMoment {
                moment_id: str_field(m, "moment_id").filter(|s| !s.is_empty())?,
                creator: str_field(m, "creator").unwrap_or_default(),
                created: number(m.get("create_time")).unwrap_or(0),
                personal: number(m.get("create_type")) == Some(1),
            })
        })
        .collect();
    let next = str_field(v, "next_cursor").filter(|c| !c.is_empty());
    (list, next)
}

/// The members who published a corp post, from a `get_moment_task`
/// answer (`publish_status` 1).
pub fn published_members(v: &Value) -> Vec<String> {
    v.get("task_list")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| t.get("publish_status").and_then(Value::as_i64) == Some(1))
        .filter_map(|t| str_field(t, "userid").filter(|u| !u.is_empty()))
        .collect()
}

impl WeComConnector {
    /// `get_moment_list`: one page of the posts made from `start` to `end`
    /// (at most 30 days apart), every kind (`filter_type` 2).
    pub async fn moment_list(
        &self,
        start: i64,
        end: i64,
        cursor: Option<&str>,
    ) -> Result<(Vec<ListedMoment>, Option<String>), SendError> {
        let v = self
            .call(
                "/cgi-bin/externalcontact/get_moment_list",
                &json!({"start_time": start, "end_time": end, "filter_type": 2,
                        "cursor": cursor.unwrap_or(""), "limit": MOMENT_LIST_PAGE}),
            )
            .await?;
        Ok(moment_list(&v))
    }

    /// `get_moment_task`: the members who published a corp post (its
    /// comments are read per member).
    pub async fn moment_members(&self, moment_id: &str) -> Result<Vec<String>, SendError> {
        let v = self
            .call(
                "/cgi-bin/externalcontact/get_moment_task",
                &json!({"moment_id": moment_id, "limit": 1000}),
            )
            .await?;
        Ok(published_members(&v))
    }

    /// `add_moment_task`: starts publishing; answers the job's id.
    pub async fn add_moment_task(&self, moment: &Moment) -> Result<String, SendError> {
        let v = self
            .call("/cgi-bin/externalcontact/add_moment_task", &moment.body()?)
            .await?;
        str_field(&v, "jobid")
            .ok_or_else(|| SendError::Permanent("wecom: add_moment_task answered no jobid".into()))
    }

    /// `get_moment_task_result`: where the publishing job is.
    pub async fn moment_task_result(&self, jobid: &str) -> Result<TaskResult, SendError> {
        let (_, v) = self
            .api
            .get(
                "/cgi-bin/externalcontact/get_moment_task_result",
                &[("jobid", jobid)],
            )
            .await?;
        task_result(&v)
    }

    /// `get_moment_comments`: the customers' likes and comments on a
    /// moment that `userid` published.
    pub async fn moment_reactions(
        &self,
        moment_id: &str,
        userid: &str,
    ) -> Result<Vec<Reaction>, SendError> {
        let v = self
            .call(
                "/cgi-bin/externalcontact/get_moment_comments",
                &json!({"moment_id": moment_id, "userid": userid}),
            )
            .await?;
        Ok(reactions(&v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_is_the_body_wecom_documents() {
        let m = Moment {
            text: "双11 新品上架".into(),
            attachments: vec![Attachment::Link {
                title: "新品指南".into(),
                url: "https://shop.example/c/abc".into(),
                media_id: None,
            }],
            senders: vec!["zhangsan".into()],
            tag_ids: vec!["etXXXX".into()],
        };
        assert_eq!(
            m.body().unwrap(),
            json!({"text": {"content": "双11 新品上架"},
                   "attachments": [{"msgtype": "link", "link": {"title": "新品指南", "url": "https://shop.example/c/abc"}}],
                   "visible_range": {"sender_list": {"user_list": ["zhangsan"]},
                                     "external_contact_list": {"tag_list": ["etXXXX"]}}})
        );
        let images = Moment {
            text: String::new(),
            attachments: vec![
                Attachment::Image {
                    media_id: "m1".into()
                };
                10
            ],
            senders: vec![],
            tag_ids: vec![],
        };
        assert!(images.body().unwrap_err().to_string().contains("at most 9"));
        let empty = Moment {
            text: " ".into(),
            attachments: vec![],
            senders: vec![],
            tag_ids: vec![],
        };
        assert!(empty.body().is_err());
    }

    #[test]
    fn a_moment_list_and_a_corp_posts_members_are_read() {
        let (list, next) = moment_list(&json!({"errcode": 0, "next_cursor": "C2", "moment_list": [
            {"moment_id": "momP", "creator": "lisi", "create_time": "1605000000", "create_type": 1, "visible_type": 1},
            {"moment_id": "momC", "creator": "admin", "create_time": 1605000100, "create_type": 0},
            {"creator": "nobody"}
        ]}));
        assert_eq!(next.as_deref(), Some("C2"));
        assert_eq!(
            list,
            [
                ListedMoment {
                    moment_id: "momP".into(),
                    creator: "lisi".into(),
                    created: 1_605_000_000,
                    personal: true
                },
                ListedMoment {
                    moment_id: "momC".into(),
                    creator: "admin".into(),
                    created: 1_605_000_100,
                    personal: false
                },
            ]
        );
        assert_eq!(moment_list(&json!({"next_cursor": ""})), (vec![], None));
        assert_eq!(
            published_members(&json!({"task_list": [
                {"userid": "zhangsan", "publish_status": 1},
                {"userid": "lisi", "publish_status": 0}
            ]})),
            ["zhangsan"]
        );
    }

    #[test]
    fn a_jobs_result_and_the_reactions_are_read() {
        assert_eq!(
            task_result(&json!({"errcode": 0, "status": 1})).unwrap(),
            TaskResult::Running
        );
        assert_eq!(
            task_result(
                &json!({"errcode": 0, "status": 3, "type": "add_moment_task",
                "result": {"errcode": 0, "errmsg": "ok", "moment_id": "momxxx",
                    "invalid_sender_list": {"user_list": ["lisi"]},
                    "invalid_external_contact_list": {"tag_list": ["etBAD"]}}})
            )
            .unwrap(),
            TaskResult::Published {
                moment_id: "momxxx".into(),
                invalid_senders: vec!["lisi".into()],
                invalid_tags: vec!["etBAD".into()],
            }
        );
        assert!(matches!(
            task_result(&json!({"status": 3, "result": {"errcode": 41003, "errmsg": "bad"}})).unwrap(),
            TaskResult::Failed(m) if m.contains("41003")
        ));
        let got = reactions(&json!({"errcode": 0,
            "comment_list": [{"external_userid": "wmC", "create_time": 1790000200}, {"userid": "zhangsan", "create_time": 1790000300}],
            "like_list": [{"external_userid": "wmA", "create_time": 1790000100}]}));
        assert_eq!(
            got,
            vec![
                Reaction {
                    external_userid: "wmA".into(),
                    kind: "like",
                    at: 1_790_000_100
                },
                Reaction {
                    external_userid: "wmC".into(),
                    kind: "comment",
                    at: 1_790_000_200
                },
            ]
        );
        let e = reaction_event("momxxx", &got[0]);
        assert_eq!(e["identity"], "wecom:wmA");
        assert_eq!(e["name"], "moment_like");
        assert_eq!(
            reaction_event("momxxx", &got[0])["id"],
            e["id"],
            "the same reaction, the same id"
        );
        let parsed = siyu_domain::wire::parse_json_event(&e).expect("a valid event");
        assert_eq!(parsed.ts, 1_790_000_100);
    }
}
