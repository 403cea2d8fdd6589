//! The column mapping of a CSV export (TOML): which column holds each
//! order field, extra marketplace status words, the marketplace of a file
//! without a channel column; and one CSV row as an order object.

use super::csv::clean_cell;
use super::parse::{parse_channel, Status, StatusTable};
use super::FIELDS;
use serde_json::{Map, Value};
use siyu_domain::Channel;
use std::collections::BTreeMap;

/// Which CSV column holds each order field, how status words map, and the
/// marketplace when the file has no channel column. Read from TOML:
///
/// ```toml
/// channel = "taobao"            # optional (or --channel, or a channel column)
/// [columns]                     # field = "column header"
/// order_id = "订单编号"
/// status = "订单状态"
/// amount = "实付金额"
/// paid_at = "付款时间"
/// phone = "买家手机号"
/// buyer_id = "买家会员名"
/// [status]                      # extra / overriding status words
/// "已签收" = "paid"
/// ```
///
/// Without a mapping the columns are named like the fields.
#[derive(Clone, Debug, Default)]
pub struct Mapping {
    /// (field, column header), in [`FIELDS`] order.
    pub columns: Vec<(&'static str, String)>,
    pub statuses: StatusTable,
    pub channel: Option<Channel>,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    channel: Option<String>,
    #[serde(default)]
    columns: BTreeMap<String, String>,
    #[serde(default)]
    status: BTreeMap<String, String>,
}

impl Mapping {
    /// Parses a mapping file; every fault names its key and the fix.
    pub fn from_toml(text: &str) -> Result<Mapping, String> {
        siyu_domain::toml_nesting::check_toml_nesting(text).map_err(|e| format!("mapping: {e}"))?;
        let f: MappingFile = toml::from_str(text).map_err(|e| format!("mapping: {e}"))?;
        let mut m = Mapping::default();
        for (field, column) in &f.columns {
            let Some(known) = FIELDS.iter().find(|f| *f == field) else {
                return Err(format!(
                    "mapping: [columns] `{field}` is not an order field; fields are {}",
                    FIELDS.join(", ")
                ));
            };
            if column.trim().is_empty() {
                return Err(format!(
                    "mapping: [columns] `{field}` names an empty column"
                ));
            }
            m.columns.push((known, column.trim().to_string()));
        }
        m.columns
            .sort_by_key(|(f, _)| FIELDS.iter().position(|x| x == f));
        if !m.columns.iter().any(|(f, _)| *f == "order_id") {
            return Err("mapping: [columns] needs `order_id`, the order number column (e.g. order_id = \"订单编号\")".into());
        }
        for (word, status) in &f.status {
            let s = Status::parse(status).ok_or_else(|| {
                format!("mapping: [status] \"{word}\" = \"{status}\": use paid, refunded, partially_refunded, purchase, refund or skip")
            })?;
            m.statuses.insert(word, s);
        }
        if let Some(c) = &f.channel {
            m.channel = Some(
                parse_channel("channel", c)
                    .map_err(|e| format!("mapping: channel: {}", e.message))?,
            );
        }
        Ok(m)
    }

    /// The identity mapping: every header named like a field.
    pub fn by_field_names(header: &[String]) -> Mapping {
        let columns = FIELDS
            .iter()
            .filter(|f| header.iter().any(|h| clean_cell(h) == **f))
            .map(|f| (*f, f.to_string()))
            .collect();
        Mapping {
            columns,
            ..Mapping::default()
        }
    }

    /// Column positions of the mapped fields in `header`, or which mapped
    /// column is missing (with the header's columns, to spot the typo).
    pub fn bind(&self, header: &[String]) -> Result<Vec<(&'static str, usize)>, String> {
        let names: Vec<&str> = header.iter().map(|h| clean_cell(h)).collect();
        let mut bound = Vec::new();
        for (field, column) in &self.columns {
            match names.iter().position(|h| h == column) {
                Some(i) => bound.push((*field, i)),
                None => {
                    return Err(format!(
                        "column `{column}` (mapped to `{field}`) is not in the file's header; its columns are: {}",
                        names.join(", ")
                    ))
                }
            }
        }
        if !bound.iter().any(|(f, _)| *f == "order_id") {
            return Err(format!(
                "no `order_id` column; map one with --mapping (the header has: {})",
                names.join(", ")
            ));
        }
        Ok(bound)
    }

    /// The column a field is read from (for error messages).
    pub fn column_of(&self, field: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, c)| c.as_str())
    }
}

/// One CSV record as an order object (string values; empty cells absent).
pub fn csv_order(bound: &[(&'static str, usize)], record: &[String]) -> Value {
    let mut o = Map::new();
    for (field, i) in bound {
        if let Some(cell) = record.get(*i) {
            let cell = clean_cell(cell);
            if !cell.is_empty() {
                o.insert(field.to_string(), Value::String(cell.to_string()));
            }
        }
    }
    Value::Object(o)
}
