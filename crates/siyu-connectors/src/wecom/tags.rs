//! WeCom's corp tags (企业客户标签) and tagging a customer: what a siyu tag
//! is on WeCom's side.
//!
//! - `POST /cgi-bin/externalcontact/get_corp_tag_list` `{}` →
//!   `{tag_group: [{group_id, group_name, tag: [{id, name, deleted}]}]}`:
//!   every corp tag; siyu names a tag by its `name` (the group is WeCom's
//!   way of arranging them in the admin console).
//! - `POST /cgi-bin/externalcontact/add_corp_tag`
//!   `{group_name, tag: [{name}]}` → `{tag_group: {group_id, tag: [{id, name}]}}`:
//!   a siyu tag WeCom does not have yet is created in the group
//!   [`SIYU_TAG_GROUP`].
//! - `POST /cgi-bin/externalcontact/mark_tag`
//!   `{userid, external_userid, add_tag: [id], remove_tag: [id]}`: tags
//!   (or untags) the customer as the operator `userid` sees them.

use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

use crate::SendError;

/// The corp tag group siyu creates its tags in.
pub const SIYU_TAG_GROUP: &str = "siyu";

/// One corp tag.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct CorpTag {
    pub id: String,
    pub name: String,
    pub deleted: bool,
}

/// One corp tag group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct CorpTagGroup {
    pub group_id: String,
    pub group_name: String,
    pub tag: Vec<CorpTag>,
}

/// The corp's tags both ways: id → name and name → id (the first tag
/// of a name, in WeCom's order, when two groups share one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorpTags {
    pub names: HashMap<String, String>,
    pub ids: HashMap<String, String>,
}

impl CorpTags {
    pub fn from_groups(groups: &[CorpTagGroup]) -> CorpTags {
        let mut t = CorpTags::default();
        for tag in groups.iter().flat_map(|g| &g.tag).filter(|t| !t.deleted) {
            t.names.insert(tag.id.clone(), tag.name.clone());
            t.ids
                .entry(tag.name.clone())
                .or_insert_with(|| tag.id.clone());
        }
        t
    }
}

impl super::WeComConnector {
    /// Every corp tag (`get_corp_tag_list`).
    pub async fn corp_tags(&self) -> Result<Vec<CorpTagGroup>, SendError> {
        let (_, v) = self
            .api
            .post("/cgi-bin/externalcontact/get_corp_tag_list", &json!({}))
            .await?;
        match v.get("tag_group") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(g) => serde_json::from_value(g.clone()).map_err(|e| {
                SendError::Permanent(format!(
                    "wecom: get_corp_tag_list answer is not readable: {e}"
                ))
            }),
        }
    }

    /// Creates the corp tag `name` in [`SIYU_TAG_GROUP`] (`add_corp_tag`)
    /// and answers its id.
    pub async fn add_corp_tag(&self, name: &str) -> Result<String, SendError> {
        let body = json!({"group_name": SIYU_TAG_GROUP, "tag": [{"name": name}]});
        let (_, v) = self
            .api
            .post("/cgi-bin/externalcontact/add_corp_tag", &body)
            .await?;
        v.pointer("/tag_group/tag")
            .and_then(Value::as_array)
            .and_then(|tags| {
                tags.iter()
                    .find(|t| t.get("name").and_then(Value::as_str) == Some(name))
                    .or(tags.first())
            })
            .and_then(|t| t.get("id").and_then(Value::as_str))
            .map(str::to_string)
            .ok_or_else(|| {
                SendError::Retryable(format!("wecom: add_corp_tag answered no id for {name:?}"))
            })
    }

    /// Tags and untags a customer as `userid` sees them (`mark_tag`), by
    /// corp tag ids.
    pub async fn mark_tag(
        &self,
        userid: &str,
        external_userid: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<(), SendError> {
        let mut body = json!({"userid": userid, "external_userid": external_userid});
        if !add.is_empty() {
            body["add_tag"] = json!(add);
        }
        if !remove.is_empty() {
            body["remove_tag"] = json!(remove);
        }
        self.api
            .post("/cgi-bin/externalcontact/mark_tag", &body)
            .await?;
        Ok(())
    }
}
