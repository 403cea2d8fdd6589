//! Engine snapshots kept in the store (migration 11), so every node on one
//! database can start from the newest one and replay only the log after
//! it, instead of the whole log (issue 16: a node with no snapshot of its
//! own, new or replaced, is ready in seconds).
//!
//! The store keeps bytes, not rules: what a snapshot reflects ([`SnapshotInfo`]:
//! log offset, erasure count, the newest event at or below that offset) is
//! written beside it, and the server checks it against the log before it
//! loads one. The store's own part is integrity and erasure: the bytes go
//! in parts of [`SNAPSHOT_PART`] (rows of a few MiB: no backend limit on a
//! value comes near, and a read streams them) with their length and
//! SHA-256, checked on every read; a snapshot is kept only if no erasure
//! committed since the engine it holds was built, and an erasure deletes
//! every stored one in its own transaction.

use crate::{Result, StoreError};
use sha2::{Digest, Sha256};

/// Bytes per stored part.
pub const SNAPSHOT_PART: usize = 4 << 20;

/// Snapshots kept after a new one is stored: the newest, and the one before
/// it in case the newest cannot be used.
pub const SNAPSHOTS_KEPT: usize = 2;

/// What a snapshot reflects, written beside its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Every event up to this log offset, and none after it.
    pub log_offset: u64,
    /// The store's erasure count ([`crate::erasures`]) when the engine it
    /// holds was built: a different count now means it may hold erased data.
    pub erasures: u64,
    /// The newest event at or below `log_offset` when it was taken
    /// ([`crate::Store::log_anchor`]): a log replaced under the same name
    /// has other events there.
    pub anchor: Option<LogAnchor>,
    /// When it was stored (epoch seconds, the caller's clock).
    pub created_at: i64,
}

/// A stored event named by its offset and stored id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogAnchor {
    pub offset: u64,
    /// `None` for events stored before every event had an id.
    pub event_id: Option<String>,
}

/// A snapshot as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSnapshot {
    /// Assigned by the store, increasing.
    pub id: u64,
    pub info: SnapshotInfo,
    /// Its length in bytes.
    pub len: u64,
    /// SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
}

/// Lowercase hex of a digest.
pub(crate) fn hex(digest: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    digest
        .iter()
        .flat_map(|b| {
            [
                HEX[(b >> 4) as usize] as char,
                HEX[(b & 15) as usize] as char,
            ]
        })
        .collect()
}

/// Cuts what a reader gives into [`SNAPSHOT_PART`]-byte parts, hashing as
/// it goes.
pub(crate) struct Parts<'r> {
    reader: &'r mut dyn std::io::Read,
    buf: Vec<u8>,
    hash: Sha256,
    len: u64,
}

impl<'r> Parts<'r> {
    pub(crate) fn new(reader: &'r mut dyn std::io::Read) -> Self {
        Parts {
            reader,
            buf: vec![0; SNAPSHOT_PART],
            hash: Sha256::new(),
            len: 0,
        }
    }

    /// The next part (full unless it is the last), or `None` at the end.
    pub(crate) fn next_part(&mut self) -> Result<Option<&[u8]>> {
        let mut filled = 0;
        while filled < self.buf.len() {
            match self.reader.read(&mut self.buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(StoreError::Invalid(format!(
                        "reading the snapshot to store: {e}"
                    )))
                }
            }
        }
        if filled == 0 {
            return Ok(None);
        }
        let part = &self.buf[..filled];
        self.hash.update(part);
        self.len += filled as u64;
        Ok(Some(part))
    }

    /// Length and SHA-256 (hex) of everything read.
    pub(crate) fn finish(self) -> (u64, String) {
        (self.len, hex(&self.hash.finalize()))
    }
}

/// Gathers a stored snapshot's parts and checks them against its row.
pub(crate) struct Gather {
    bytes: Vec<u8>,
    hash: Sha256,
    len: u64,
    sha256: String,
}

impl Gather {
    /// For a snapshot stored as `len` bytes with SHA-256 `sha256`.
    pub(crate) fn new(len: u64, sha256: String) -> Self {
        Gather {
            // Sized once: a snapshot is hundreds of MiB on a large store.
            bytes: Vec::with_capacity(usize::try_from(len).unwrap_or(0)),
            hash: Sha256::new(),
            len,
            sha256,
        }
    }

    pub(crate) fn part(&mut self, part: &[u8]) -> Result<()> {
        if self.bytes.len() as u64 + part.len() as u64 > self.len {
            return Err(StoreError::Corrupt(format!(
                "stored engine snapshot holds more than its {} bytes",
                self.len
            )));
        }
        self.hash.update(part);
        self.bytes.extend_from_slice(part);
        Ok(())
    }

    /// The bytes, if they are what was stored.
    pub(crate) fn finish(self) -> Result<Vec<u8>> {
        if self.bytes.len() as u64 != self.len {
            return Err(StoreError::Corrupt(format!(
                "stored engine snapshot has {} of its {} bytes",
                self.bytes.len(),
                self.len
            )));
        }
        let sha256 = hex(&self.hash.finalize());
        if sha256 != self.sha256 {
            return Err(StoreError::Corrupt(format!(
                "stored engine snapshot's SHA-256 is {sha256}, not the {} it was stored with",
                self.sha256
            )));
        }
        Ok(self.bytes)
    }
}
