//! A node's engine snapshot: where it is kept, what it is checked against
//! before it is trusted, and which one a node starts from.
//!
//! Every snapshot says where in the store's history it was taken
//! ([`Position`], a header before the engine's bytes): the log offset, the
//! store's erasure count when the engine was built, and the newest event
//! at or below the offset (`Store::log_anchor`). It is loaded only while
//! the store agrees ([`check`]): the same erasure count (else it may hold
//! an erased person), the offset not beyond the log's head, the same event
//! at the anchor (else it is a snapshot of another log under the same
//! name, a database dropped and loaded again). Anything else is refused,
//! logged, and the log replayed.
//!
//! Where: the file in the node's data dir ([`snapshot_path`]), written by
//! the writer and by `siyu import`; and with PostgreSQL a copy in the
//! store (`Store::put_snapshot`), shared by every node on the database, so
//! a node with no valid file of its own (a new one, a replaced one) starts
//! from the newest one another node stored and replays only the log after
//! it ([`choose`]). The copy is made from the file on a thread of its own
//! ([`Sharing`]): the writer is held by the file alone, as before. SQLite
//! keeps the file only: its store is on the same disk, and nobody else
//! starts from it.

use crate::config::Config;
use crate::writer::OpenStore;
use siyu_engine::snapshot::SnapshotError;
use siyu_engine::Engine;
use siyu_store::{LogAnchor, SnapshotInfo, Store};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

const MAGIC: &[u8; 8] = b"SIYUNODE";
/// Bump on any change to the header's layout (an older file is refused
/// and the log replayed once).
const VERSION: u32 = 1;
/// The longest header: magic, version, three u64, a flag, an id's length
/// and an id (ids are at most 128 bytes; room to spare).
const MAX_HEADER: usize = 4096;

/// Where in the store's history a snapshot was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The engine reflects the log up to this offset, and nothing after.
    pub offset: u64,
    /// The store's erasure count (`siyu_store::erasures`) when the engine
    /// was built.
    pub erasures: u64,
    /// The newest stored event at or below `offset` when it was taken.
    pub anchor: Option<LogAnchor>,
}

impl Position {
    /// The position of an engine that reflects the log up to `offset`
    /// and `erasures` erasures, with the anchor read from `store`.
    pub fn of(store: &mut dyn Store, offset: u64, erasures: u64) -> siyu_store::Result<Position> {
        Ok(Position {
            offset,
            erasures,
            anchor: store.log_anchor(offset)?,
        })
    }

    fn header(&self) -> Vec<u8> {
        let mut h = Vec::with_capacity(64);
        h.extend_from_slice(MAGIC);
        h.extend_from_slice(&VERSION.to_le_bytes());
        h.extend_from_slice(&self.offset.to_le_bytes());
        h.extend_from_slice(&self.erasures.to_le_bytes());
        match &self.anchor {
            None => h.push(0),
            Some(a) => {
                h.push(1);
                h.extend_from_slice(&a.offset.to_le_bytes());
                let id = a.event_id.as_deref().map_or(&[][..], str::as_bytes);
                h.push(u8::from(a.event_id.is_some()));
                h.extend_from_slice(&(id.len() as u32).to_le_bytes());
                h.extend_from_slice(id);
            }
        }
        h
    }

    /// The position a snapshot's bytes start with, and where the engine's
    /// bytes begin; `None` when they do not start with a header this build
    /// writes (an older file, a damaged one).
    pub fn read(bytes: &[u8]) -> Option<(Position, usize)> {
        let mut r = bytes;
        let mut take = |n: usize| -> Option<&[u8]> {
            let (a, b) = r.split_at_checked(n)?;
            r = b;
            Some(a)
        };
        let u64_at = |b: &[u8]| b.try_into().ok().map(u64::from_le_bytes);
        if take(8)? != MAGIC || take(4)? != VERSION.to_le_bytes() {
            return None;
        }
        let offset = u64_at(take(8)?)?;
        let erasures = u64_at(take(8)?)?;
        let anchor = match take(1)?[0] {
            0 => None,
            1 => {
                let offset = u64_at(take(8)?)?;
                let has_id = take(1)?[0] == 1;
                let len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
                let id = std::str::from_utf8(take(len)?).ok()?.to_string();
                Some(LogAnchor {
                    offset,
                    event_id: has_id.then_some(id),
                })
            }
            _ => return None,
        };
        let start = bytes.len() - r.len();
        Some((
            Position {
                offset,
                erasures,
                anchor,
            },
            start,
        ))
    }
}

/// Why a snapshot is not loaded.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(
        "it reflects {snapshot} erasure(s), the store counts {store}: it may hold erased data"
    )]
    Erasures { snapshot: u64, store: u64 },
    #[error("it reflects the log up to offset {offset}, beyond the log's head {head}")]
    BeyondHead { offset: u64, head: u64 },
    #[error("the log's event at or below offset {offset} is not the one it was taken after: it is of another log")]
    OtherLog { offset: u64 },
    #[error("no snapshot header of this build (format {VERSION})")]
    NoHeader,
    #[error("its header ({header:?}) is not the position it was stored under ({stored:?})")]
    NotAsStored { header: Position, stored: Position },
    #[error("checking it against the store: {0}")]
    Store(#[from] siyu_store::StoreError),
}

/// Whether the store still agrees with a snapshot taken at `position`
/// (see the module docs); `erasures` is the store's count now.
pub fn check(store: &mut dyn Store, position: &Position, erasures: u64) -> Result<(), Refusal> {
    if position.erasures != erasures {
        return Err(Refusal::Erasures {
            snapshot: position.erasures,
            store: erasures,
        });
    }
    let head = store.last_offset()?;
    if position.offset > head {
        return Err(Refusal::BeyondHead {
            offset: position.offset,
            head,
        });
    }
    if store.log_anchor(position.offset)? != position.anchor {
        return Err(Refusal::OtherLog {
            offset: position.offset,
        });
    }
    Ok(())
}

/// The engine snapshot is a cache of one store's log: with PostgreSQL its
/// name carries a hash of the URL and schema, so pointing the same data dir
/// at another database never loads a snapshot of a different log.
/// `siyu import` writes one too, so the next start does not replay the log.
pub fn snapshot_path(config: &Config) -> PathBuf {
    let name = match &config.database_url {
        None => "engine.snapshot".into(),
        Some(url) => {
            let id = format!("{url}\n{}", config.database_schema.as_deref().unwrap_or(""));
            format!("engine-pg-{}.snapshot", &crate::auth::hash_key(&id)[..16])
        }
    };
    config.data_dir.join(name)
}

/// Whether a node on this store shares its snapshots through it: with
/// PostgreSQL, where other nodes start from them.
pub fn shared_through_store(config: &Config) -> bool {
    config.database_url.is_some()
}

/// How much snapshot data may wait in the page cache before it is
/// flushed (see [`write_temp`]).
const SYNC_EVERY: usize = 8 << 20;

/// Writes an engine snapshot taken at `position` (temp file named by
/// process, then an atomic rename: a server and an import may both write
/// one). Streamed in parts: a 200 MB snapshot is never one buffer.
pub fn write_snapshot(path: &Path, engine: &Engine, position: &Position) -> std::io::Result<()> {
    write_snapshot_if(path, engine, position, || true).map(|_| ())
}

/// Like [`write_snapshot`], but the written file replaces the last one
/// only if `still_valid()` says so once it is written (else it is
/// removed); returns whether it was kept.
pub fn write_snapshot_if(
    path: &Path,
    engine: &Engine,
    position: &Position,
    still_valid: impl FnOnce() -> bool,
) -> std::io::Result<bool> {
    let tmp = write_temp(path, engine, position)?;
    keep_if(&tmp, path, still_valid)
}

/// The slow half of a snapshot, which only reads the engine (the writer
/// runs it on a thread of its own, `crate::writer`): `engine` taken at
/// `position`, written to a temporary file beside `path` (named by
/// process), returned for [`keep_if`].
pub fn write_temp(path: &Path, engine: &Engine, position: &Position) -> std::io::Result<PathBuf> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&position.header())?;
        let mut result = Ok(());
        let mut unsynced = 0usize;
        engine.snapshot_parts(position.offset, |part| {
            if result.is_ok() {
                result = file.write_all(part);
                unsynced += part.len();
                // Flushed as it goes: with ext4's ordered data, the log's
                // commit (an fsync of the WAL) waits for every dirty block
                // in the journal's transaction, so hundreds of MB of
                // unflushed snapshot held appends for 100-200 ms.
                if result.is_ok() && unsynced >= SYNC_EVERY {
                    unsynced = 0;
                    result = file.sync_data();
                }
            }
        });
        // On the writing thread: renaming an unflushed file over the old
        // one makes the file system flush it inside the rename (ext4's
        // replace-by-rename rule), on the writer's thread (~100 ms for the
        // 1M bench store); and a kept snapshot is then whole after a crash.
        result.and_then(|()| file.sync_data())
    })();
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Replaces `path` with the written `tmp` (an atomic rename) if
/// `still_valid()`, else removes `tmp`; whether it was kept.
pub fn keep_if(
    tmp: &Path,
    path: &Path,
    still_valid: impl FnOnce() -> bool,
) -> std::io::Result<bool> {
    if !still_valid() {
        let _ = std::fs::remove_file(tmp);
        return Ok(false);
    }
    // Renaming over the old file frees its blocks when its last handle
    // closes: that handle is held here and closed on its own thread, so the
    // writer does not wait while a large file is freed (~190 ms for the
    // 500 MB snapshot of the 1M bench store).
    let old = std::fs::File::open(path).ok();
    std::fs::rename(tmp, path)?;
    if let Some(old) = old {
        let _ = std::thread::Builder::new()
            .name("siyu-free-snapshot".into())
            .spawn(move || drop(old));
    }
    Ok(true)
}

/// Where the snapshot a node started from came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The file in the node's data dir.
    File,
    /// The copy another node (or this one) stored in the database.
    Store,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::File => "file",
            Source::Store => "store",
        }
    }
}

/// The snapshot a node starts from.
pub struct Chosen {
    body: Body,
    pub position: Position,
    pub source: Source,
}

/// Where a chosen snapshot's engine is read from.
enum Body {
    /// A copy read from the store: header and engine bytes, the engine's
    /// from the offset.
    Bytes(Vec<u8>, usize),
    /// The node's file, open and positioned at the engine's bytes, with
    /// their length: decoded as it is read, so the start never holds the
    /// file beside the engine it builds.
    File(std::fs::File, u64),
}

impl Chosen {
    /// The engine it holds and the log offset it reflects.
    pub fn engine(self) -> Result<(Engine, u64), SnapshotError> {
        match self.body {
            Body::Bytes(bytes, at) => Engine::from_snapshot(&bytes[at..]),
            Body::File(file, len) => {
                Engine::read_snapshot(std::io::BufReader::with_capacity(1 << 20, file), len)
            }
        }
    }
}

/// The position of the file at `path` and whether the store agrees with
/// it; `None` when there is no file (or it cannot be read).
fn file_position(path: &Path) -> Option<Option<Position>> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut head = Vec::with_capacity(MAX_HEADER);
    Read::by_ref(&mut file)
        .take(MAX_HEADER as u64)
        .read_to_end(&mut head)
        .ok()?;
    Some(Position::read(&head).map(|(p, _)| p))
}

/// The newest valid snapshot for a node to start from: the file at
/// `path`, or when `shared` a snapshot stored in `store` that is newer
/// than it. `erasures` is the store's count, read before the engine is
/// built. Every snapshot refused is logged with why; `None`: replay the
/// whole log.
pub fn choose(store: &mut dyn Store, path: &Path, shared: bool, erasures: u64) -> Option<Chosen> {
    let file = match file_position(path) {
        None => None,
        Some(None) => {
            tracing::warn!(path = %path.display(), error = %Refusal::NoHeader, "engine snapshot file refused");
            None
        }
        Some(Some(position)) => match check(store, &position, erasures) {
            Ok(()) => Some(position),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "engine snapshot file refused");
                None
            }
        },
    };
    let file_offset = file.as_ref().map(|p| p.offset);
    if shared {
        if let Some(chosen) = choose_stored(store, file_offset, erasures) {
            return Some(chosen);
        }
    }
    let position = file?;
    let opened = (|| {
        let mut file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        let mut head = Vec::with_capacity(MAX_HEADER);
        Read::by_ref(&mut file)
            .take(MAX_HEADER as u64)
            .read_to_end(&mut head)?;
        std::io::Result::Ok((file, len, head))
    })();
    let (mut file, len, head) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "reading the engine snapshot file");
            return None;
        }
    };
    // Read twice: the same file only if the header is the one checked
    // (the open file stays this snapshot even if a newer one replaces it).
    match Position::read(&head) {
        Some((p, engine_at)) if p == position => {
            let at = engine_at as u64;
            if let Err(e) = file.seek(std::io::SeekFrom::Start(at)) {
                tracing::warn!(path = %path.display(), error = %e, "reading the engine snapshot file");
                return None;
            }
            Some(Chosen {
                body: Body::File(file, len.saturating_sub(at)),
                position,
                source: Source::File,
            })
        }
        _ => {
            tracing::warn!(path = %path.display(), "engine snapshot file changed while it was read");
            None
        }
    }
}

/// The newest stored snapshot the store agrees with and that is newer
/// than the file's (`file_offset`).
fn choose_stored(store: &mut dyn Store, file_offset: Option<u64>, erasures: u64) -> Option<Chosen> {
    let stored = match store.snapshots() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "listing the stored engine snapshots");
            return None;
        }
    };
    for s in stored {
        if file_offset.is_some_and(|f| f >= s.info.log_offset) {
            // The file is as new: read from the local disk.
            return None;
        }
        let stored_at = Position {
            offset: s.info.log_offset,
            erasures: s.info.erasures,
            anchor: s.info.anchor.clone(),
        };
        let refused = |e: &dyn std::fmt::Display| {
            tracing::warn!(id = s.id, offset = s.info.log_offset, error = %e, "stored engine snapshot refused");
        };
        if let Err(e) = check(store, &stored_at, erasures) {
            refused(&e);
            continue;
        }
        let started = Instant::now();
        let bytes = match store.read_snapshot(s.id) {
            // Pruned by a newer one since it was listed.
            Ok(None) => continue,
            Ok(Some(b)) => b,
            Err(e) => {
                refused(&e);
                continue;
            }
        };
        match Position::read(&bytes) {
            Some((header, engine_at)) if header == stored_at => {
                tracing::info!(
                    id = s.id,
                    offset = s.info.log_offset,
                    bytes = bytes.len(),
                    seconds = started.elapsed().as_secs_f64(),
                    "read the engine snapshot stored in the database"
                );
                return Some(Chosen {
                    body: Body::Bytes(bytes, engine_at),
                    position: stored_at,
                    source: Source::Store,
                });
            }
            Some((header, _)) => refused(&Refusal::NotAsStored {
                header,
                stored: stored_at,
            }),
            None => refused(&Refusal::NoHeader),
        }
    }
    None
}

/// Stores the snapshot file at `path` in `store` for other nodes, unless a
/// stored one is as new (or the file is gone: removed for an erasure).
/// Returns the stored snapshot's size, or `None` when nothing was stored.
pub fn share_file(store: &mut dyn Store, path: &Path, now: i64) -> anyhow::Result<Option<u64>> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("opening {}", path.display()))),
    };
    // The open file stays this snapshot even if a newer one replaces it.
    let mut head = Vec::with_capacity(MAX_HEADER);
    Read::by_ref(&mut file)
        .take(MAX_HEADER as u64)
        .read_to_end(&mut head)?;
    let Some((position, _)) = Position::read(&head) else {
        anyhow::bail!("{} has no snapshot header of this build", path.display());
    };
    let as_new = store
        .snapshots()?
        .iter()
        .any(|s| s.info.erasures == position.erasures && s.info.log_offset >= position.offset);
    if as_new {
        return Ok(None);
    }
    let mut whole = std::io::Cursor::new(head).chain(std::io::BufReader::new(file));
    let info = SnapshotInfo {
        log_offset: position.offset,
        erasures: position.erasures,
        anchor: position.anchor,
        created_at: now,
    };
    Ok(store.put_snapshot(&info, &mut whole)?.map(|s| s.len))
}

/// Copies the node's snapshot file into the store on a thread of its own,
/// one copy at a time: a file written while one is being copied is copied
/// when that one is done.
pub struct Sharing {
    open_store: OpenStore,
    path: PathBuf,
    running: Option<std::thread::JoinHandle<()>>,
    /// A newer file was written while a copy ran.
    again: bool,
}

impl Sharing {
    pub fn new(open_store: OpenStore, path: PathBuf) -> Sharing {
        Sharing {
            open_store,
            path,
            running: None,
            again: false,
        }
    }

    /// A new file was written: copy it (now, or after the copy running).
    pub fn share(&mut self) {
        if self.running.as_ref().is_some_and(|t| !t.is_finished()) {
            self.again = true;
            return;
        }
        self.again = false;
        let (open, path) = (self.open_store.clone(), self.path.clone());
        let request = crate::trace::current();
        let spawned = std::thread::Builder::new()
            .name("siyu-snapshot-share".into())
            .spawn(move || {
                let _request = request.as_ref().map(|r| r.span().entered());
                let started = Instant::now();
                let shared = open().and_then(|mut store| {
                    share_file(store.as_mut(), &path, crate::writer::wall_clock())
                });
                match shared {
                    Ok(Some(bytes)) => tracing::info!(
                        bytes,
                        seconds = started.elapsed().as_secs_f64(),
                        "engine snapshot stored in the database for other nodes"
                    ),
                    Ok(None) => tracing::debug!("engine snapshot not stored: one as new is, or it was removed"),
                    Err(e) => tracing::warn!(error = %e, "storing the engine snapshot in the database failed"),
                }
            });
        match spawned {
            Ok(t) => self.running = Some(t),
            Err(e) => tracing::warn!(error = %e, "cannot start the snapshot sharing thread"),
        }
    }

    /// Starts the copy a newer file is waiting for, once the running one
    /// is done (the writer calls this as it goes).
    pub fn poll(&mut self) {
        if self.again && self.running.as_ref().is_none_or(|t| t.is_finished()) {
            self.share();
        }
    }

    /// Waits until every file written so far is copied.
    pub fn finish(&mut self) {
        loop {
            if let Some(t) = self.running.take() {
                let _ = t.join();
            }
            if !self.again {
                return;
            }
            self.share();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_reads_back_and_anything_else_is_refused() {
        for anchor in [
            None,
            Some(LogAnchor {
                offset: 41,
                event_id: Some("c:00ff".into()),
            }),
            Some(LogAnchor {
                offset: 7,
                event_id: None,
            }),
        ] {
            let p = Position {
                offset: 42,
                erasures: 3,
                anchor,
            };
            let mut bytes = p.header();
            let len = bytes.len();
            bytes.extend_from_slice(b"SIYUSNAP...");
            assert_eq!(Position::read(&bytes), Some((p, len)));
            for cut in 0..len {
                assert_eq!(Position::read(&bytes[..cut]), None, "cut at {cut}");
            }
        }
        // An engine snapshot as earlier builds wrote it, without a header.
        assert_eq!(Position::read(b"SIYUSNAP\x04\0\0\0"), None);
    }
}
