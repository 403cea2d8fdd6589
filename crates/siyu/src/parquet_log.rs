//! `siyu export --format parquet`: the log as one Parquet file,
//! `events.parquet`, beside `events.jsonl`, for the analytics tools that
//! read Parquet (DuckDB, pandas, Spark) without parsing JSON.
//!
//! Why a view and not the restore's input: `events.jsonl` is the wire
//! format a restore and `siyu import` read; the Parquet file holds the
//! same events, one row each in log order, with a flat typed schema
//! ([`SCHEMA`]): times as UTC timestamps, money as cents, `properties` and
//! `traits` as JSON text. Written with the `parquet` crate's own column
//! writers (no Arrow), Snappy-compressed, one row group per
//! [`ROW_GROUP`] events so memory stays bounded.

use anyhow::Result;
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use siyu_domain::Event;
use std::io::Write;
use std::sync::Arc;

/// One row per event, in log order.
pub const SCHEMA: &str = "message siyu_event {
  REQUIRED INT64 offset;
  OPTIONAL BYTE_ARRAY id (UTF8);
  OPTIONAL INT64 seq;
  REQUIRED INT64 ts (TIMESTAMP(MILLIS,true));
  REQUIRED BYTE_ARRAY identity (UTF8);
  REQUIRED BYTE_ARRAY type (UTF8);
  REQUIRED BYTE_ARRAY channel (UTF8);
  REQUIRED INT64 amount_cents;
  OPTIONAL BYTE_ARRAY ref (UTF8);
  OPTIONAL BYTE_ARRAY group (UTF8);
  OPTIONAL BYTE_ARRAY text (UTF8);
  OPTIONAL BYTE_ARRAY name (UTF8);
  OPTIONAL BYTE_ARRAY properties (JSON);
  OPTIONAL BYTE_ARRAY traits (JSON);
}";

/// Events per row group.
pub const ROW_GROUP: usize = 100_000;

/// A column being filled: its values and, if optional, a definition level
/// per row (1 present, 0 null).
#[derive(Default)]
struct Col<T> {
    values: Vec<T>,
    defs: Vec<i16>,
}

impl<T> Col<T> {
    fn push(&mut self, v: T) {
        self.values.push(v);
    }
    fn push_opt(&mut self, v: Option<T>) {
        self.defs.push(i16::from(v.is_some()));
        self.values.extend(v);
    }
    fn clear(&mut self) {
        self.values.clear();
        self.defs.clear();
    }
}

#[derive(Default)]
struct Batch {
    ints: [Col<i64>; 4],
    strs: [Col<ByteArray>; 10],
}

/// Writes events to a Parquet file; [`ParquetLog::finish`] gives the
/// writer back.
pub struct ParquetLog<W: Write + Send> {
    writer: SerializedFileWriter<W>,
    batch: Batch,
    rows: usize,
}

fn text(s: &str) -> ByteArray {
    ByteArray::from(s.as_bytes().to_vec())
}

impl<W: Write + Send> ParquetLog<W> {
    pub fn new(w: W) -> Result<Self> {
        let schema = Arc::new(parse_message_type(SCHEMA)?);
        let props = Arc::new(
            WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_created_by(format!("siyu {}", env!("CARGO_PKG_VERSION")))
                .build(),
        );
        Ok(ParquetLog {
            writer: SerializedFileWriter::new(w, schema, props)?,
            batch: Batch::default(),
            rows: 0,
        })
    }

    /// Adds the event stored at `offset`.
    pub fn push(&mut self, offset: u64, e: &Event) -> Result<()> {
        let b = &mut self.batch;
        let [offs, seq, ts, amount] = &mut b.ints;
        offs.push(offset as i64);
        seq.push_opt(e.seq.map(|s| s as i64));
        ts.push(e.ts.saturating_mul(1000));
        amount.push(e.amount);
        let [id, identity, ty, channel, reference, group, txt, name, props, traits] = &mut b.strs;
        id.push_opt(e.id.as_deref().map(text));
        identity.push(text(e.identity.as_str()));
        ty.push(text(e.event_type.as_str()));
        channel.push(text(e.channel.as_str()));
        reference.push_opt(e.reference.as_ref().map(|r| text(r.as_str())));
        group.push_opt(e.group.as_deref().map(text));
        txt.push_opt(e.text.as_deref().map(text));
        name.push_opt(e.name.as_deref().map(text));
        props.push_opt(
            e.properties
                .as_ref()
                .map(|p| serde_json::to_vec(p).map(ByteArray::from))
                .transpose()?,
        );
        traits.push_opt(
            e.traits
                .as_ref()
                .map(|t| serde_json::to_vec(t).map(ByteArray::from))
                .transpose()?,
        );
        self.rows += 1;
        if self.rows == ROW_GROUP {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let b = &mut self.batch;
        let [offs, seq, ts, amount] = &mut b.ints;
        let [id, identity, ty, channel, reference, group, txt, name, props, traits] = &mut b.strs;
        // The schema's column order.
        enum C<'a> {
            I(&'a mut Col<i64>),
            S(&'a mut Col<ByteArray>),
        }
        let mut cols = [
            C::I(offs),
            C::S(id),
            C::I(seq),
            C::I(ts),
            C::S(identity),
            C::S(ty),
            C::S(channel),
            C::I(amount),
            C::S(reference),
            C::S(group),
            C::S(txt),
            C::S(name),
            C::S(props),
            C::S(traits),
        ]
        .into_iter();
        let mut rg = self.writer.next_row_group()?;
        while let Some(mut w) = rg.next_column()? {
            fn defs(defs: &[i16]) -> Option<&[i16]> {
                (!defs.is_empty()).then_some(defs)
            }
            match cols.next() {
                Some(C::I(c)) => {
                    w.typed::<Int64Type>()
                        .write_batch(&c.values, defs(&c.defs), None)?;
                    c.clear();
                }
                Some(C::S(c)) => {
                    w.typed::<ByteArrayType>()
                        .write_batch(&c.values, defs(&c.defs), None)?;
                    c.clear();
                }
                None => anyhow::bail!("the Parquet schema has more columns than siyu writes"),
            }
            w.close()?;
        }
        rg.close()?;
        self.rows = 0;
        Ok(())
    }

    /// Writes the last row group and the footer; the inner writer back.
    pub fn finish(mut self) -> Result<W> {
        self.flush()?;
        Ok(self.writer.into_inner()?)
    }
}
