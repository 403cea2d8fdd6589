//! Engine snapshots: the whole engine state as bytes, so a restart loads
//! the snapshot and replays only the log after it instead of everything.
//!
//! Pure: the caller writes and reads the file. Format (little-endian):
//! `SIYUSNAP`, format version u32, log offset u64, then sections. Segment
//! and property definitions are stored as JSON; memberships are not stored
//! (they are recomputed by `start_live`, which is exact by construction).

use crate::chunked::Chunked;
use crate::engine::{Engine, Referral};
use crate::identity::IdentityGraph;
use crate::log_index::LogIndex;
use crate::person::{Exit, GroupCode, GroupNames, MoreExtra, Person, PersonExtra, Purchase};
use crate::property::PropertyDef;
use crate::segment::Expr;

const MAGIC: &[u8; 8] = b"SIYUSNAP";
/// Bump on any change to the layout below, or to what a field means
/// (v4: a person's `first_seq` and a referral's `seq` are tie-breaks in
/// event time, `RawEvent::tie_break`, no longer log offsets).
/// 6: a conversation keeps the newest message of each intent.
/// 7: the conversation is beside `extra`, not in it (`ExtraJson::no_extra`).
pub const SNAPSHOT_VERSION: u32 = 7;

/// Why a snapshot could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a siyu snapshot (bad magic bytes)")]
    BadMagic,
    #[error("snapshot format {0} is not supported by this build (expects {SNAPSHOT_VERSION}); delete it to rebuild from the log")]
    Version(u32),
    #[error("snapshot is truncated or corrupt at {0}")]
    Corrupt(&'static str),
    #[error("reading the snapshot failed at {what}: {error}")]
    Read { what: &'static str, error: String },
}

/// Bytes handed to a snapshot's sink at a time.
const PART: usize = 1 << 20;
/// Bytes an array is encoded in at a time.
const BLOCK: usize = 16 << 10;

/// The snapshot writer: fills a buffer and hands it to the sink whenever it
/// holds a part, so a snapshot of a large engine never exists as one
/// buffer (no growing copy of hundreds of MB, no burst of page faults).
struct W<F: FnMut(&[u8])> {
    buf: Vec<u8>,
    sink: F,
}

impl<F: FnMut(&[u8])> W<F> {
    fn put(&mut self, b: &[u8]) {
        if self.buf.len() + b.len() > PART && !self.buf.is_empty() {
            (self.sink)(&self.buf);
            self.buf.clear();
        }
        if b.len() > PART {
            (self.sink)(b);
        } else {
            self.buf.extend_from_slice(b);
        }
    }
    fn finish(mut self) {
        if !self.buf.is_empty() {
            (self.sink)(&self.buf);
        }
    }
    fn u32(&mut self, v: u32) {
        self.put(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.put(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.put(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.put(b);
    }
    /// A length, then each value's `N` little-endian bytes, in blocks: one
    /// `put` per 16 KiB, not per value.
    fn array<T: Copy, const N: usize>(&mut self, v: &[T], le: impl Fn(T) -> [u8; N]) {
        self.u64(v.len() as u64);
        self.values(v.iter().copied(), le);
    }
    /// Each value's `N` little-endian bytes, no length: an array written
    /// after its total length (from pieces, or computed as it goes).
    fn values<T, const N: usize>(
        &mut self,
        v: impl IntoIterator<Item = T>,
        le: impl Fn(T) -> [u8; N],
    ) {
        let mut v = v.into_iter();
        let mut block = Vec::with_capacity(BLOCK);
        loop {
            block.clear();
            block.extend(v.by_ref().take(BLOCK / N).flat_map(&le));
            if !block.is_empty() {
                self.put(&block);
            }
            // A short block was the last one (most arrays are short).
            if block.len() < BLOCK / N * N {
                return;
            }
        }
    }
    fn u32s(&mut self, v: &[u32]) {
        self.array(v, u32::to_le_bytes);
    }

    fn u64s(&mut self, v: &[u64]) {
        self.array(v, u64::to_le_bytes);
    }
}

/// The snapshot reader: decodes from any byte source a field at a time,
/// so a snapshot file is read as it is decoded and never held whole in
/// memory beside the engine it builds (that copy was the start's peak:
/// 4.6 GB over a 7 GB engine for ten million persons). `left` is what the
/// source still holds, so a length that cannot fit is refused before
/// anything is allocated for it.
struct R<S> {
    src: S,
    left: u64,
    buf: Vec<u8>,
}

/// Values an array is read in at a time.
const READ_BLOCK: usize = 16 << 10;

impl<S: std::io::Read> R<S> {
    fn fill(src: &mut S, out: &mut [u8], what: &'static str) -> Result<(), SnapshotError> {
        src.read_exact(out).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => SnapshotError::Corrupt(what),
            _ => SnapshotError::Read {
                what,
                error: e.to_string(),
            },
        })
    }
    fn take(&mut self, n: usize, what: &'static str) -> Result<&[u8], SnapshotError> {
        if n as u64 > self.left {
            return Err(SnapshotError::Corrupt(what));
        }
        self.buf.resize(n, 0);
        Self::fill(&mut self.src, &mut self.buf, what)?;
        self.left -= n as u64;
        Ok(&self.buf)
    }
    fn fixed<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], SnapshotError> {
        if (N as u64) > self.left {
            return Err(SnapshotError::Corrupt(what));
        }
        let mut a = [0u8; N];
        Self::fill(&mut self.src, &mut a, what)?;
        self.left -= N as u64;
        Ok(a)
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, SnapshotError> {
        Ok(u32::from_le_bytes(self.fixed(what)?))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, SnapshotError> {
        Ok(u64::from_le_bytes(self.fixed(what)?))
    }
    fn i64(&mut self, what: &'static str) -> Result<i64, SnapshotError> {
        Ok(self.u64(what)? as i64)
    }
    fn len(&mut self, what: &'static str, elem: usize) -> Result<usize, SnapshotError> {
        let n = self.u64(what)?;
        if n.saturating_mul(elem as u64) > self.left {
            return Err(SnapshotError::Corrupt(what));
        }
        Ok(n as usize)
    }
    fn bytes(&mut self, what: &'static str) -> Result<&[u8], SnapshotError> {
        let n = self.len(what, 1)?;
        self.take(n, what)
    }
    /// [`R::bytes`] as a vector of their own.
    fn bytes_vec(&mut self, what: &'static str) -> Result<Vec<u8>, SnapshotError> {
        let n = self.len(what, 1)?;
        let mut v = vec![0u8; n];
        Self::fill(&mut self.src, &mut v, what)?;
        self.left -= n as u64;
        Ok(v)
    }
    /// [`W::array`] back: a length, then that many `N`-byte values.
    fn array<T, const N: usize>(
        &mut self,
        what: &'static str,
        from_le: impl Fn([u8; N]) -> T,
    ) -> Result<Vec<T>, SnapshotError> {
        let n = self.len(what, N)?;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let k = (n - out.len()).min(READ_BLOCK);
            let bytes = self.take(k * N, what)?;
            out.extend(
                bytes
                    .chunks_exact(N)
                    .filter_map(|c| c.first_chunk::<N>().map(|&a| from_le(a))),
            );
        }
        Ok(out)
    }
    fn u32s(&mut self, what: &'static str) -> Result<Vec<u32>, SnapshotError> {
        self.array(what, u32::from_le_bytes)
    }
    fn u64s(&mut self, what: &'static str) -> Result<Vec<u64>, SnapshotError> {
        self.array(what, u64::from_le_bytes)
    }
}

#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
struct Definitions {
    segments: Vec<(String, String, Expr)>,
    properties: Vec<PropertyDef>,
    channels: Vec<String>,
    #[serde(default)]
    campaigns: Vec<String>,
    #[serde(default)]
    campaign_clicks: Vec<u64>,
}

/// [`Exit`] as snapshots store it: the group by name (engines code
/// group names in first-seen order, which a restore does not repeat).
#[derive(
    Clone,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
enum ExitJson {
    LeftGroup(String),
    Refund,
    Unfriend,
}

impl ExitJson {
    fn of(x: Exit, groups: &GroupNames) -> Self {
        match x {
            Exit::LeftGroup(g) => ExitJson::LeftGroup(groups.name(g).to_string()),
            Exit::Refund => ExitJson::Refund,
            Exit::Unfriend => ExitJson::Unfriend,
        }
    }

    fn into_exit(self, groups: &mut GroupNames) -> Exit {
        match self {
            ExitJson::LeftGroup(g) => Exit::LeftGroup(groups.intern(&g)),
            ExitJson::Refund => Exit::Refund,
            ExitJson::Unfriend => Exit::Unfriend,
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
struct ExtraJson {
    groups: Vec<String>,
    tags: Vec<String>,
    traits: serde_json::Map<String, serde_json::Value>,
    properties: Vec<Vec<(u32, i64)>>,
    #[serde(default)]
    exits: Vec<(u32, ExitJson)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    conversation: Option<crate::conversation::ConversationJson>,
    /// The person has a conversation but no `extra` (the other fields
    /// are then empty): restored as `extra: None`, exactly.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    no_extra: bool,
}

impl Engine {
    /// The engine as bytes, tagged with the log offset it reflects.
    pub fn to_snapshot(&self, log_offset: u64) -> Vec<u8> {
        let mut out = Vec::new();
        self.snapshot_parts(log_offset, |part| out.extend_from_slice(part));
        out
    }

    /// [`Engine::to_snapshot`] handed to `sink` in parts of about 1 MiB, in
    /// order (the server streams them to a file).
    pub fn snapshot_parts(&self, log_offset: u64, sink: impl FnMut(&[u8])) {
        let mut w = W {
            buf: Vec::with_capacity(PART),
            sink,
        };
        w.put(MAGIC);
        w.u32(SNAPSHOT_VERSION);
        w.u64(log_offset);
        w.i64(self.now());
        w.u64(self.events_applied());
        let defs = Definitions {
            segments: self
                .segments
                .segments()
                .iter()
                .map(|s| (s.name.clone(), s.source.clone(), s.expr.clone()))
                .collect(),
            properties: self.properties.clone(),
            channels: self.channels.clone(),
            campaigns: self.campaigns.clone(),
            campaign_clicks: self.campaign_clicks.clone(),
        };
        w.bytes(&serde_json::to_vec(&defs).unwrap_or_default());
        let ids = self.ids.parts();
        w.u64(ids.bytes.iter().map(|b| b.len() as u64).sum());
        for piece in &ids.bytes {
            w.put(piece);
        }
        w.u64(self.ids.len() as u64 + 1);
        w.values(self.ids.key_starts(), u32::to_le_bytes);
        for array in [ids.slot, ids.next] {
            w.u64(array.len() as u64);
            w.values(array.iter().copied(), u32::to_le_bytes);
        }
        w.u64(self.persons.len() as u64);
        for p in &self.persons {
            w.u32(p.first_ts);
            w.u32(p.events);
            w.u64(p.first_seq);
            w.u32(p.last_event_ts);
            w.u32(p.first_channel as u32 | (p.opted_out as u32) << 16 | (p.alive as u32) << 17);
            w.u32(p.first_friend_ts);
            w.u32(p.purchase_count());
            w.u32(p.last_purchase_ts());
            w.u32(p.canonical);
            w.i64(p.gross_spend());
            w.i64(p.refunded());
            // Format 7 kept a ring entry and an identity count per person;
            // both are derived now (the canonical id is in the ring).
            w.u32(p.canonical);
            w.u32(self.ids.ring_len(p.canonical) as u32);
            w.u32s(p.reads());
            w.u64(p.purchases().len() as u64);
            for x in p.purchases().iter() {
                w.u32(x.ts);
                w.i64(x.amount);
            }
            if p.extra.is_none() && !p.has_conversation() {
                w.bytes(&[]);
            } else {
                let empty = PersonExtra::default();
                let e = p.extra.as_deref().unwrap_or(&empty);
                // Names, in name order: the same bytes whatever codes
                // this engine gave the groups.
                let mut exits: Vec<(u32, ExitJson)> = e
                    .exits
                    .iter()
                    .map(|&(t, x)| (t, ExitJson::of(x, &self.groups)))
                    .collect();
                exits.sort();
                let j = ExtraJson {
                    groups: self
                        .groups
                        .names_of(&e.groups)
                        .into_iter()
                        .map(str::to_string)
                        .collect(),
                    tags: e.tags().to_vec(),
                    traits: e.traits().clone(),
                    properties: e.properties().to_vec(),
                    exits,
                    conversation: p.conversation().map(|c| (&*c).into()),
                    no_extra: p.extra.is_none(),
                };
                w.bytes(&serde_json::to_vec(&j).unwrap_or_default());
            }
        }
        w.u64(self.referrals.len() as u64);
        for r in &self.referrals {
            w.u32(r.invitee);
            w.u32(r.inviter);
            w.u32(r.ts);
            w.u32(r.campaign);
            w.u32(r.device);
            w.u32(r.ip);
            w.u64(r.seq);
        }
        match &self.log_index {
            None => w.u32(0),
            Some(index) => {
                w.u32(1);
                let parts = index.parts();
                w.u64(parts.base);
                w.u64(parts.back_len as u64);
                w.values(
                    parts.back.iter().flat_map(|c| c.iter().copied()),
                    u32::to_le_bytes,
                );
                w.u64(parts.far.len() as u64);
                for (offset, previous) in parts.far {
                    w.u64(offset);
                    w.u64(previous);
                }
                w.u64s(&parts.newest);
            }
        }
        w.finish();
    }

    /// Restores an engine from [`Engine::to_snapshot`] bytes; returns it
    /// with the log offset it reflects. The engine comes back in bulk mode:
    /// call `start_live` after replaying the rest of the log.
    pub fn from_snapshot(data: &[u8]) -> Result<(Engine, u64), SnapshotError> {
        Engine::read_snapshot(data, data.len() as u64)
    }

    /// [`Engine::from_snapshot`] decoding `len` bytes as `source` reads
    /// them (give it a buffered reader): a snapshot file is never held
    /// whole in memory.
    pub fn read_snapshot(
        source: impl std::io::Read,
        len: u64,
    ) -> Result<(Engine, u64), SnapshotError> {
        let mut r = R {
            src: source,
            left: len,
            buf: Vec::new(),
        };
        if r.take(8, "magic")? != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let version = r.u32("version")?;
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version(version));
        }
        let offset = r.u64("offset")?;
        let now = r.i64("now")?;
        let events_applied = r.u64("events")?;
        let defs: Definitions = serde_json::from_slice(r.bytes("definitions")?)
            .map_err(|_| SnapshotError::Corrupt("definitions"))?;
        let bytes = r.bytes_vec("identities")?;
        let starts = r.u32s("identity starts")?;
        let slot = r.u32s("identity slots")?;
        let next = r.u32s("identity rings")?;
        let ids = IdentityGraph::from_parts(bytes, starts, slot, next)
            .ok_or(SnapshotError::Corrupt("identity graph"))?;
        let n = r.len("persons", 60)?;
        let mut persons = Chunked::new();
        let mut groups = GroupNames::default();
        for _ in 0..n {
            let mut p = Person::new(0);
            p.first_ts = r.u32("person")?;
            p.events = r.u32("person")?;
            p.first_seq = r.u64("person")?;
            p.last_event_ts = r.u32("person")?;
            let flags = r.u32("person")?;
            p.first_channel = flags as u16;
            p.opted_out = flags >> 16 & 1 == 1;
            p.alive = flags >> 17 & 1 == 1;
            p.first_friend_ts = r.u32("person")?;
            // Derived from the purchases (checked below).
            let purchase_count = r.u32("person")?;
            let last_purchase_ts = r.u32("person")?;
            p.canonical = r.u32("person")?;
            // Derived from the purchases and kept in `extra` (checked below).
            let gross_spend = r.i64("person")?;
            let refunded = r.i64("person")?;
            let ring_entry = r.u32("person")?;
            let _identity_count = r.u32("person")?;
            let mut reads = r.u32s("reads")?;
            let k = r.len("purchases", 12)?;
            let mut purchases = (0..k)
                .map(|_| {
                    Ok(Purchase {
                        ts: r.u32("purchase")?,
                        amount: r.i64("purchase")?,
                    })
                })
                .collect::<Result<Vec<_>, SnapshotError>>()?;
            // Written sorted; sorting again (linear when they are) keeps
            // the binary searches over them right whatever the file says.
            reads.sort_unstable();
            purchases.sort_unstable();
            p.set_lists(&purchases, &reads);
            let extra = r.bytes("extra")?;
            if !extra.is_empty() {
                let j: ExtraJson =
                    serde_json::from_slice(extra).map_err(|_| SnapshotError::Corrupt("extra"))?;
                p.set_conversation(j.conversation.map(Into::into));
                if !j.no_extra {
                    let mut codes: Vec<GroupCode> =
                        j.groups.iter().map(|g| groups.intern(g)).collect();
                    codes.sort_unstable();
                    codes.dedup();
                    let mut exits: Vec<(u32, Exit)> = j
                        .exits
                        .into_iter()
                        .map(|(t, x)| (t, x.into_exit(&mut groups)))
                        .collect();
                    exits.sort();
                    p.extra = Some(Box::new(PersonExtra::from_fields(
                        codes.into_boxed_slice(),
                        exits.into_boxed_slice(),
                        refunded,
                        MoreExtra {
                            tags: j.tags,
                            traits: j.traits,
                            properties: j.properties,
                        },
                    )));
                }
            }
            let valid = (p.canonical as usize) < ids.len()
                && (ring_entry as usize) < ids.len()
                && (!p.alive || ids.slot_of(p.canonical) as usize == persons.len())
                && purchase_count == p.purchase_count()
                && last_purchase_ts == p.last_purchase_ts()
                && gross_spend == p.gross_spend()
                && refunded == p.refunded();
            if !valid {
                return Err(SnapshotError::Corrupt("person identity"));
            }
            persons.push(p);
        }
        let k = r.len("referrals", 32)?;
        let mut referrals = Vec::with_capacity(k);
        for _ in 0..k {
            referrals.push(Referral {
                invitee: r.u32("referral")?,
                inviter: r.u32("referral")?,
                ts: r.u32("referral")?,
                campaign: r.u32("referral")?,
                device: r.u32("referral")?,
                ip: r.u32("referral")?,
                seq: r.u64("referral")?,
            });
        }
        let log_index = match r.u32("log index")? {
            0 => None,
            1 => {
                let base = r.u64("log index")?;
                let back = r.u32s("log index distances")?;
                let k = r.len("log index far", 16)?;
                let far = (0..k)
                    .map(|_| Ok((r.u64("log index far")?, r.u64("log index far")?)))
                    .collect::<Result<Vec<_>, SnapshotError>>()?;
                let newest = r.u64s("log index newest")?;
                let index = LogIndex::from_parts(base, back, far, newest)
                    .ok_or(SnapshotError::Corrupt("log index"))?;
                Some(index)
            }
            _ => return Err(SnapshotError::Corrupt("log index")),
        };
        let mut engine = Engine::restore(crate::engine::Parts {
            ids,
            persons,
            channels: defs.channels,
            groups,
            referrals,
            campaigns: defs.campaigns,
            campaign_clicks: defs.campaign_clicks,
            properties: defs.properties,
            now,
            events_applied,
            log_index,
        });
        for (name, source, expr) in defs.segments {
            engine
                .define_segment(&name, expr, source)
                .map_err(|_| SnapshotError::Corrupt("segment definitions"))?;
        }
        Ok((engine, offset))
    }
}
