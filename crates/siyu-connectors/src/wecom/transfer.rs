//! WeCom's customer and group inheritance (客户联系 → 在职继承 / 离职继承):
//! the calls behind siyu's operator hand-over when the operator's
//! customers are WeCom friends.
//!
//! Two modes, because WeCom has two APIs:
//! - [`Mode::InService`] (在职继承, the member still works at the corp):
//!   `POST /cgi-bin/externalcontact/transfer_customer` with
//!   `{handover_userid, takeover_userid, external_userid: [≤ 100],
//!   transfer_success_msg}`; the customer may refuse within 24 hours.
//!   Groups: `groupchat/onjob_transfer` `{chat_id_list: [≤ 100], new_owner}`.
//!   Results: `transfer_result`.
//! - [`Mode::Resigned`] (离职继承, the member left or was banned):
//!   `resigned/transfer_customer` (no message), groups
//!   `groupchat/transfer`, results `resigned/transfer_result`.
//!
//! Every transfer answers `{errcode, errmsg, customer: [{external_userid,
//! errcode}]}`: a customer whose own errcode is not 0 was refused by WeCom
//! at once. The result calls take `{handover_userid, takeover_userid,
//! cursor}` and answer `{customer: [{external_userid, status,
//! takeover_time}], next_cursor}` with status 1 done, 2 waiting, 3
//! refused by the customer, 4 the takeover member has too many customers,
//! 5 no relationship (the customer is not the member's friend). Group
//! transfers answer `{failed_chat_list: [{chat_id, errcode, errmsg}]}`.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{list_field, str_field, WeComConnector};
use crate::SendError;

/// The most customers (or groups) one transfer call takes.
pub const MAX_PER_CALL: usize = 100;
/// WeCom's limit on `transfer_success_msg`.
pub const MAX_SUCCESS_MSG_CHARS: usize = 200;

/// Which inheritance API a hand-over uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// 在职继承: the member still works at the corp.
    InService,
    /// 离职继承: the member left the corp or was banned.
    Resigned,
}

impl Mode {
    fn customer_path(self) -> &'static str {
        match self {
            Mode::InService => "/cgi-bin/externalcontact/transfer_customer",
            Mode::Resigned => "/cgi-bin/externalcontact/resigned/transfer_customer",
        }
    }
    fn result_path(self) -> &'static str {
        match self {
            Mode::InService => "/cgi-bin/externalcontact/transfer_result",
            Mode::Resigned => "/cgi-bin/externalcontact/resigned/transfer_result",
        }
    }
    fn group_path(self) -> &'static str {
        match self {
            Mode::InService => "/cgi-bin/externalcontact/groupchat/onjob_transfer",
            Mode::Resigned => "/cgi-bin/externalcontact/groupchat/transfer",
        }
    }
}

/// One customer's answer in a transfer call: `errcode` 0 means WeCom took
/// the request (the result comes later); anything else, refused now.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CustomerAnswer {
    pub external_userid: String,
    #[serde(default)]
    pub errcode: i64,
}

/// Where one customer's transfer stands (`transfer_result`'s `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResultStatus {
    /// 1: taken over.
    Done,
    /// 2: waiting (the customer may still refuse).
    Waiting,
    /// 3: the customer refused.
    Refused,
    /// 4: the takeover member has reached WeCom's customer limit.
    Limit,
    /// 5: the customer is not the member's friend (nothing to hand over).
    NoRelationship,
    /// Any status this build does not know.
    Unknown,
}

impl ResultStatus {
    pub fn from_code(code: i64) -> ResultStatus {
        match code {
            1 => ResultStatus::Done,
            2 => ResultStatus::Waiting,
            3 => ResultStatus::Refused,
            4 => ResultStatus::Limit,
            5 => ResultStatus::NoRelationship,
            _ => ResultStatus::Unknown,
        }
    }
}

/// One customer in a `transfer_result` page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerResult {
    pub external_userid: String,
    pub status: ResultStatus,
    pub takeover_time: i64,
}

/// One page of `transfer_result`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResultPage {
    pub customers: Vec<CustomerResult>,
    /// Empty: the last page.
    pub next_cursor: String,
}

/// A group WeCom did not move.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FailedChat {
    pub chat_id: String,
    #[serde(default)]
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
}

impl WeComConnector {
    /// Asks WeCom to move `customers` (at most [`MAX_PER_CALL`]) from
    /// `handover` to `takeover`; each customer's immediate answer.
    pub async fn transfer_customers(
        &self,
        mode: Mode,
        handover: &str,
        takeover: &str,
        customers: &[String],
        success_msg: Option<&str>,
    ) -> Result<Vec<CustomerAnswer>, SendError> {
        if customers.is_empty() || customers.len() > MAX_PER_CALL {
            return Err(SendError::Permanent(format!(
                "wecom: a transfer takes 1–{MAX_PER_CALL} customers, got {}",
                customers.len()
            )));
        }
        let mut body = json!({
            "handover_userid": handover,
            "takeover_userid": takeover,
            "external_userid": customers,
        });
        if let (Mode::InService, Some(m)) = (mode, success_msg.filter(|m| !m.is_empty())) {
            let m: String = m.chars().take(MAX_SUCCESS_MSG_CHARS).collect();
            body["transfer_success_msg"] = json!(m);
        }
        let v = self.call(mode.customer_path(), &body).await?;
        list_field(&v, "customer", "transfer_customer")
    }

    /// One page of the results of `handover` → `takeover` transfers.
    pub async fn transfer_result(
        &self,
        mode: Mode,
        handover: &str,
        takeover: &str,
        cursor: &str,
    ) -> Result<ResultPage, SendError> {
        let mut body = json!({"handover_userid": handover, "takeover_userid": takeover});
        if !cursor.is_empty() {
            body["cursor"] = json!(cursor);
        }
        let v = self.call(mode.result_path(), &body).await?;
        #[derive(Deserialize)]
        struct Row {
            external_userid: String,
            #[serde(default)]
            status: i64,
            #[serde(default)]
            takeover_time: i64,
        }
        let rows: Vec<Row> = list_field(&v, "customer", "transfer_result")?;
        Ok(ResultPage {
            customers: rows
                .into_iter()
                .map(|r| CustomerResult {
                    external_userid: r.external_userid,
                    status: ResultStatus::from_code(r.status),
                    takeover_time: r.takeover_time,
                })
                .collect(),
            next_cursor: str_field(&v, "next_cursor").unwrap_or_default(),
        })
    }

    /// Moves customer groups (at most [`MAX_PER_CALL`]) to `new_owner`;
    /// the groups WeCom did not move.
    pub async fn transfer_groups(
        &self,
        mode: Mode,
        chat_ids: &[String],
        new_owner: &str,
    ) -> Result<Vec<FailedChat>, SendError> {
        if chat_ids.is_empty() || chat_ids.len() > MAX_PER_CALL {
            return Err(SendError::Permanent(format!(
                "wecom: a group transfer takes 1–{MAX_PER_CALL} groups, got {}",
                chat_ids.len()
            )));
        }
        let v = self
            .call(
                mode.group_path(),
                &json!({"chat_id_list": chat_ids, "new_owner": new_owner}),
            )
            .await?;
        list_field(&v, "failed_chat_list", "groupchat transfer")
    }
}
