//! The Raft log on disk: entries, hard state and the latest snapshot, kept
//! in memory for raft-rs's [`Storage`] reads and written as CRC-framed
//! records to one [`Disk`] file.
//!
//! ```text
//! file: <data_dir>/__cluster_metadata/raft.log
//! frame (repeated):
//!   0  4  length  u32 BE   bytes of kind + payload
//!   4  4  crc     u32 BE   CRC-32 (crc32fast) of kind + payload
//!   8  1  kind             1 entry · 2 hard state · 3 snapshot
//!   9  n  payload          the raft-proto message (protobuf)
//! ```
//!
//! Replaying the frames in order rebuilds the state: an entry at index `i`
//! first drops every entry at `i` or later (a new leader overwrote them),
//! a hard state replaces the previous one, and a snapshot drops every entry
//! up to its index. Compaction ([`RaftStorage::compact`]) rewrites the file
//! as one snapshot frame, the hard state and the entries after the snapshot.
//!
//! # Invariants
//! - Nothing written here is relied on until [`RaftStorage::sync`] returns:
//!   the driver syncs after writing a `Ready`'s entries and hard state and
//!   before sending any message or applying any entry of it.
//! - `entries` holds exactly the indexes `snapshot.index + 1 ..= last_index`,
//!   contiguous.
//! - The conf state is the configured voter set; a file written for a
//!   different voter set is refused at open (membership changes are not
//!   supported, see Caveats).
//!
//! # Limits
//! - [`RAFT_FRAME_BYTES_MAX`]: a frame claiming more ends the valid prefix.
//! - The file is compacted once [`RaftStorage::entries_since_snapshot`]
//!   passes the driver's snapshot interval, so it stays bounded.
//!
//! # Caveats
//! - Static membership: the voter set comes from configuration; raft-rs conf
//!   changes are not proposed (issue 14 leaves reconfiguration for later).
//! - A torn or corrupt tail is cut on open. That is only safe for bytes that
//!   were never synced; a corrupt synced frame (bit rot) loses the entries
//!   after it on this node, which the leader then sends again.

use raft::prelude::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

use super::disk::Disk;
use super::frame::{self, FrameError};

/// Largest frame in the Raft log: a snapshot carries the whole image.
pub const RAFT_FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;

const KIND_ENTRY: u8 = 1;
const KIND_HARD_STATE: u8 = 2;
const KIND_SNAPSHOT: u8 = 3;

/// Why the Raft log could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RaftStorageError {
    #[error("raft log i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("raft log was written for voters {found:?}, configured voters are {configured:?}")]
    VotersChanged {
        found: Vec<u64>,
        configured: Vec<u64>,
    },
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// The Raft log of one controller.
pub struct RaftStorage {
    disk: Box<dyn Disk>,
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: Snapshot,
    entries: Vec<Entry>,
}

impl RaftStorage {
    /// Replays the file on `disk`, cutting a torn tail, for a node whose
    /// voter set is `voters`.
    pub fn open(mut disk: Box<dyn Disk>, voters: &[u64]) -> Result<Self, RaftStorageError> {
        let bytes = disk.read_all()?;
        let (frames, valid) = frame::decode_prefix(&bytes, RAFT_FRAME_BYTES_MAX);
        if valid < bytes.len() {
            tracing::warn!(
                position = valid,
                dropped_bytes = bytes.len() - valid,
                "raft log has a torn or corrupt tail; truncating"
            );
            disk.truncate(valid as u64)?;
        }
        let mut conf_state = ConfState::default();
        conf_state.set_voters(voters.to_vec());
        let mut storage = Self {
            disk,
            hard_state: HardState::default(),
            conf_state,
            snapshot: Snapshot::default(),
            entries: Vec::new(),
        };
        for (kind, payload) in frames {
            storage.replay(kind, payload)?;
        }
        let found = storage
            .snapshot
            .get_metadata()
            .get_conf_state()
            .get_voters();
        if !storage.snapshot.is_empty() && found != voters {
            return Err(RaftStorageError::VotersChanged {
                found: found.to_vec(),
                configured: voters.to_vec(),
            });
        }
        Ok(storage)
    }

    fn replay(&mut self, kind: u8, payload: &[u8]) -> Result<(), RaftStorageError> {
        match kind {
            KIND_ENTRY => {
                let entry: Entry = frame::decode_message(payload)?;
                self.put_entries(std::slice::from_ref(&entry));
            }
            KIND_HARD_STATE => self.hard_state = frame::decode_message(payload)?,
            KIND_SNAPSHOT => {
                let snapshot: Snapshot = frame::decode_message(payload)?;
                self.put_snapshot(snapshot);
            }
            other => return Err(FrameError::UnknownKind(other).into()),
        }
        Ok(())
    }

    /// The hard state last written.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The latest snapshot (index 0 when there is none).
    pub fn latest_snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Entries kept after the latest snapshot.
    pub fn entries_since_snapshot(&self) -> usize {
        self.entries.len()
    }

    fn first(&self) -> u64 {
        self.snapshot.get_metadata().index + 1
    }

    fn last(&self) -> u64 {
        self.snapshot.get_metadata().index + self.entries.len() as u64
    }

    /// Keeps `new` in memory, dropping any entry they overwrite. `new` is
    /// contiguous and starts at most one past the last entry (raft-rs's
    /// contract for `Ready::entries`).
    fn put_entries(&mut self, new: &[Entry]) {
        let Some(head) = new.first() else { return };
        let first = self.first();
        if head.index + (new.len() as u64) <= first {
            return; // all before the snapshot
        }
        let skip = first.saturating_sub(head.index) as usize;
        let new = new.get(skip..).unwrap_or_default();
        let Some(head) = new.first() else { return };
        let keep = head.index.saturating_sub(first) as usize;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(new);
    }

    fn put_snapshot(&mut self, snapshot: Snapshot) {
        let meta = snapshot.get_metadata();
        let (index, term) = (meta.index, meta.term);
        let drop = (index + 1).saturating_sub(self.first()) as usize;
        if drop >= self.entries.len()
            || self.entries.get(drop.wrapping_sub(1)).map(|e| e.term) != Some(term)
        {
            // The snapshot is ahead of this log, or our entry at its index
            // has another term: nothing here follows it.
            self.entries.clear();
        } else {
            self.entries.drain(..drop);
        }
        self.hard_state.commit = self.hard_state.commit.max(index);
        self.hard_state.term = self.hard_state.term.max(term);
        self.snapshot = snapshot;
    }

    /// Writes entries from a `Ready` (durable after [`Self::sync`]).
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), RaftStorageError> {
        let mut bytes = Vec::new();
        for entry in entries {
            frame::encode_message(&mut bytes, KIND_ENTRY, entry, RAFT_FRAME_BYTES_MAX)?;
        }
        self.disk.append(&bytes)?;
        self.put_entries(entries);
        Ok(())
    }

    /// Writes a hard state from a `Ready` (durable after [`Self::sync`]).
    pub fn set_hard_state(&mut self, hard_state: &HardState) -> Result<(), RaftStorageError> {
        let mut bytes = Vec::new();
        frame::encode_message(
            &mut bytes,
            KIND_HARD_STATE,
            hard_state,
            RAFT_FRAME_BYTES_MAX,
        )?;
        self.disk.append(&bytes)?;
        self.hard_state = hard_state.clone();
        Ok(())
    }

    /// Records the commit index raft-rs reported in a `LightReady`; it is
    /// written with the next hard state (a lost commit index is learnt again
    /// from the leader).
    pub fn set_commit(&mut self, commit: u64) {
        self.hard_state.commit = commit;
    }

    /// Installs a snapshot received from the leader; durable on return.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<(), RaftStorageError> {
        if snapshot.get_metadata().index <= self.snapshot.get_metadata().index {
            return Ok(());
        }
        self.put_snapshot(snapshot);
        self.rewrite()
    }

    /// Replaces every entry up to `snapshot`'s index by the snapshot (made
    /// by the state machine at its applied index); durable on return.
    pub fn compact(&mut self, snapshot: Snapshot) -> Result<(), RaftStorageError> {
        self.apply_snapshot(snapshot)
    }

    fn rewrite(&mut self) -> Result<(), RaftStorageError> {
        let mut bytes = Vec::new();
        frame::encode_message(
            &mut bytes,
            KIND_SNAPSHOT,
            &self.snapshot,
            RAFT_FRAME_BYTES_MAX,
        )?;
        frame::encode_message(
            &mut bytes,
            KIND_HARD_STATE,
            &self.hard_state,
            RAFT_FRAME_BYTES_MAX,
        )?;
        for entry in &self.entries {
            frame::encode_message(&mut bytes, KIND_ENTRY, entry, RAFT_FRAME_BYTES_MAX)?;
        }
        self.disk.replace(&bytes)?;
        Ok(())
    }

    /// Makes everything written so far durable.
    pub fn sync(&mut self) -> Result<(), RaftStorageError> {
        self.disk.sync()?;
        Ok(())
    }

    /// The conf state snapshots made here carry.
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }
}

fn unavailable() -> raft::Error {
    raft::Error::Store(StorageError::Unavailable)
}

impl Storage for RaftStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(unavailable());
        }
        let from = (low - self.first()) as usize;
        let to = (high - self.first()) as usize;
        let mut out = self.entries.get(from..to).ok_or_else(unavailable)?.to_vec();
        raft::util::limit_size(&mut out, max_size.into());
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let meta = self.snapshot.get_metadata();
        if idx == meta.index {
            return Ok(meta.term);
        }
        if idx < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        let at = (idx - self.first()) as usize;
        self.entries.get(at).map(|e| e.term).ok_or_else(unavailable)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot.get_metadata().index < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::super::disk::FileDisk;
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: format!("{index}/{term}").into_bytes().into(),
            ..Default::default()
        }
    }

    fn open(dir: &std::path::Path) -> RaftStorage {
        let disk = FileDisk::open(dir, "raft.log").unwrap();
        RaftStorage::open(Box::new(disk), &[1, 2, 3]).unwrap()
    }

    fn terms(s: &RaftStorage) -> Vec<(u64, u64)> {
        let (lo, hi) = (s.first(), s.last() + 1);
        let ents = s.entries(lo, hi, None, GetEntriesContext::empty(false));
        ents.unwrap().iter().map(|e| (e.index, e.term)).collect()
    }

    #[test]
    fn overwritten_entries_and_hard_state_replay() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = open(dir.path());
            s.append(&[entry(1, 1), entry(2, 1), entry(3, 1)]).unwrap();
            s.append(&[entry(2, 2)]).unwrap();
            let hs = HardState {
                term: 2,
                vote: 3,
                commit: 1,
                ..Default::default()
            };
            s.set_hard_state(&hs).unwrap();
            s.sync().unwrap();
        }
        let s = open(dir.path());
        assert_eq!(terms(&s), vec![(1, 1), (2, 2)]);
        assert_eq!((s.hard_state().term, s.hard_state().vote), (2, 3));
    }

    #[test]
    fn compaction_keeps_the_tail_and_a_torn_frame_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = open(dir.path());
            s.append(&(1..=5).map(|i| entry(i, 1)).collect::<Vec<_>>())
                .unwrap();
            let mut snap = Snapshot::default();
            snap.mut_metadata().index = 3;
            snap.mut_metadata().term = 1;
            snap.mut_metadata().set_conf_state(s.conf_state().clone());
            snap.data = b"image".to_vec().into();
            s.compact(snap).unwrap();
            s.append(&[entry(6, 1)]).unwrap();
            s.sync().unwrap();
        }
        let path = dir.path().join("raft.log");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, &[0, 0, 1, 0, 9, 9, 9]).unwrap();
        let s = open(dir.path());
        assert_eq!(terms(&s), vec![(4, 1), (5, 1), (6, 1)]);
        assert_eq!(s.term(3).unwrap(), 1);
        assert!(s.term(2).is_err());
        assert_eq!(&s.latest_snapshot().data[..], b"image");
        let other = RaftStorage::open(
            Box::new(FileDisk::open(dir.path(), "raft.log").unwrap()),
            &[1],
        );
        assert!(matches!(other, Err(RaftStorageError::VotersChanged { .. })));
    }
}
