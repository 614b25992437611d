//! The on-disk metadata log of a single node: every accepted
//! [`MetadataRecord`], in order, each fsynced before it is applied.
//!
//! ```text
//! file: <data_dir>/__cluster_metadata/metadata.log
//! frame (repeated):
//!   0  4  length  u32 BE   bytes of payload
//!   4  4  crc     u32 BE   CRC-32 (crc32fast) of payload
//!   8  n  payload          one MetadataRecord as JSON
//! ```
//!
//! # Invariants
//! - A record is applied to the image only after its frame is fsynced, so
//!   what a client was told (topic created, config changed) survives a crash.
//! - On open, the valid prefix of frames is replayed; a torn or corrupt tail
//!   (a crash mid-append) is cut off and logged once at warn.
//! - A failed append is never followed by an acknowledged one behind
//!   garbage: the file is cut back to the end of the last whole frame (and
//!   fsynced) before the error is returned; if even that fails, the log
//!   refuses every later append until a restart recovers it.
//!
//! # Limits
//! - [`METADATA_RECORD_BYTES_MAX`] per record: a record above it is refused
//!   before writing, and a length above it on disk ends the valid prefix.
//!
//! # Caveats
//! The log grows without compaction; topics and configs change rarely, so a
//! snapshot is left to the Raft controller work, which replaces this writer.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::records::MetadataRecord;

/// Largest serialized metadata record.
pub const METADATA_RECORD_BYTES_MAX: usize = 1024 * 1024;

const FRAME_HEADER_BYTES: usize = 8;

/// Why the metadata log could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum MetadataLogError {
    #[error("metadata log {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("metadata record of {size} bytes exceeds {max}")]
    RecordTooLarge { size: usize, max: usize },
    #[error("metadata record could not be encoded: {0}")]
    Encode(String),
}

/// The append-only file of metadata records.
#[derive(Debug)]
pub struct MetadataLog {
    path: PathBuf,
    file: File,
    /// Bytes of whole frames: where the next frame starts.
    len: u64,
    /// Set when a failed append could not be cut back: nothing more may
    /// be appended behind what may be a torn frame.
    failed: bool,
    /// Test seam: the next append writes this many bytes, then fails.
    #[cfg(test)]
    tear_next_append_at: Option<usize>,
}

impl MetadataLog {
    /// Opens (creating if absent) the log under `data_dir` and returns it
    /// with every valid record, in order.
    pub fn open(data_dir: &Path) -> Result<(Self, Vec<MetadataRecord>), MetadataLogError> {
        let dir = data_dir.join("__cluster_metadata");
        let path = dir.join("metadata.log");
        let io_err = |source| MetadataLogError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io_err)?;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_err)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_err)?;
        let (records, valid_len) = decode_prefix(&bytes);
        if valid_len < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                position = valid_len,
                dropped_bytes = bytes.len() - valid_len,
                "metadata log has a torn or corrupt tail; truncating"
            );
            file.set_len(valid_len as u64).map_err(io_err)?;
            file.sync_all().map_err(io_err)?;
        }
        file.seek(SeekFrom::End(0)).map_err(io_err)?;
        // The directory entry of a newly created log must be durable too,
        // and so must the entry of its directory in the data directory:
        // without it a power cut takes back every topic (tests/powerloss).
        for d in [dir.as_path(), data_dir] {
            File::open(d).and_then(|d| d.sync_all()).map_err(io_err)?;
        }
        Ok((
            Self {
                path,
                file,
                len: valid_len as u64,
                failed: false,
                #[cfg(test)]
                tear_next_append_at: None,
            },
            records,
        ))
    }

    /// Appends `record` and fsyncs it. Blocking: call it off the reactor.
    pub fn append(&mut self, record: &MetadataRecord) -> Result<(), MetadataLogError> {
        let payload =
            serde_json::to_vec(record).map_err(|e| MetadataLogError::Encode(e.to_string()))?;
        if payload.len() > METADATA_RECORD_BYTES_MAX {
            return Err(MetadataLogError::RecordTooLarge {
                size: payload.len(),
                max: METADATA_RECORD_BYTES_MAX,
            });
        }
        let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
        // Bounded above, so the cast cannot truncate.
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
        frame.extend_from_slice(&payload);
        if self.failed {
            return Err(MetadataLogError::Io {
                path: self.path.clone(),
                source: io::Error::other("an earlier append failed and could not be undone"),
            });
        }
        let written = self.write_frame(&frame);
        if let Err(source) = written {
            // Cut the torn frame off so the next append does not land
            // behind garbage that would end the valid prefix at replay.
            let undone = self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.sync_data());
            if let Err(e) = undone {
                tracing::error!(path = %self.path.display(), error = %e, "a failed metadata append could not be undone; the metadata log refuses further appends");
                self.failed = true;
            }
            return Err(MetadataLogError::Io {
                path: self.path.clone(),
                source,
            });
        }
        self.len += frame.len() as u64;
        Ok(())
    }

    fn write_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        #[cfg(test)]
        if let Some(at) = self.tear_next_append_at.take() {
            self.file.write_all(frame.get(..at).unwrap_or(frame))?;
            return Err(io::Error::other("test: torn append"));
        }
        self.file.write_all(frame)?;
        self.file.sync_data()
    }
}

/// Decodes the longest valid prefix of frames; returns the records and the
/// byte length of that prefix.
fn decode_prefix(bytes: &[u8]) -> (Vec<MetadataRecord>, usize) {
    let mut records = Vec::new();
    let mut at = 0usize;
    while let Some(header) = bytes.get(at..at + FRAME_HEADER_BYTES) {
        let (len, crc) = header.split_at(4);
        let len = u32::from_be_bytes(len.try_into().unwrap_or_default()) as usize;
        let crc = u32::from_be_bytes(crc.try_into().unwrap_or_default());
        if len > METADATA_RECORD_BYTES_MAX {
            break;
        }
        let start = at + FRAME_HEADER_BYTES;
        let Some(payload) = bytes.get(start..start + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Ok(record) = serde_json::from_slice::<MetadataRecord>(payload) else {
            break;
        };
        records.push(record);
        at = start + len;
    }
    (records, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deleted(name: &str) -> MetadataRecord {
        MetadataRecord::TopicDeleted { name: name.into() }
    }

    #[test]
    fn records_survive_reopen_and_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, records) = MetadataLog::open(dir.path()).unwrap();
            assert!(records.is_empty());
            log.append(&deleted("a")).unwrap();
            log.append(&deleted("b")).unwrap();
        }
        let path = dir.path().join("__cluster_metadata/metadata.log");
        let full = std::fs::metadata(&path).unwrap().len();
        // A crash mid-append leaves a partial third frame.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 0, 40, 1, 2]).unwrap();
        drop(f);
        let (mut log, records) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(records, vec![deleted("a"), deleted("b")]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), full);
        log.append(&deleted("c")).unwrap();
        let (_, records) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(records.len(), 3);
    }

    #[test]
    fn a_failed_append_is_cut_back_so_later_appends_survive_replay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("__cluster_metadata/metadata.log");
        {
            let (mut log, _) = MetadataLog::open(dir.path()).unwrap();
            log.append(&deleted("a")).unwrap();
            let good = std::fs::metadata(&path).unwrap().len();
            log.tear_next_append_at = Some(11);
            assert!(log.append(&deleted("torn")).is_err());
            assert_eq!(std::fs::metadata(&path).unwrap().len(), good);
            // Acknowledged after the failure: must be replayed.
            log.append(&deleted("b")).unwrap();
        }
        let (_, records) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(records, vec![deleted("a"), deleted("b")]);
    }

    #[test]
    fn a_log_that_cannot_undo_a_failed_append_refuses_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = MetadataLog::open(dir.path()).unwrap();
        log.failed = true;
        assert!(matches!(
            log.append(&deleted("a")),
            Err(MetadataLogError::Io { .. })
        ));
    }

    #[test]
    fn flipped_byte_ends_the_valid_prefix() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, _) = MetadataLog::open(dir.path()).unwrap();
            log.append(&deleted("a")).unwrap();
            log.append(&deleted("b")).unwrap();
        }
        let path = dir.path().join("__cluster_metadata/metadata.log");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (_, records) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(records, vec![deleted("a")]);
    }
}
