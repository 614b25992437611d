//! A simulated disk: appended bytes stay unsynced until `sync`; a crash
//! keeps the synced bytes and a random prefix of the unsynced ones (a torn
//! write), as a real file after power loss may.

use std::io;
use std::sync::{Arc, Mutex};

use sluice_broker::controller::disk::Disk;

#[derive(Default)]
struct File {
    synced: Vec<u8>,
    unsynced: Vec<u8>,
}

/// One node's Raft log file, shared between the node and the simulator.
#[derive(Clone, Default)]
pub struct SimDisk {
    file: Arc<Mutex<File>>,
}

impl SimDisk {
    /// Loses what was not synced, keeping `torn % (unsynced + 1)` bytes of it.
    pub fn crash(&self, torn: u64) {
        let mut f = self.file.lock().unwrap();
        let keep = (torn % (f.unsynced.len() as u64 + 1)) as usize;
        let kept: Vec<u8> = f.unsynced[..keep].to_vec();
        f.synced.extend_from_slice(&kept);
        f.unsynced.clear();
    }
}

impl Disk for SimDisk {
    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        let f = self.file.lock().unwrap();
        let mut all = f.synced.clone();
        all.extend_from_slice(&f.unsynced);
        Ok(all)
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.lock().unwrap().unsynced.extend_from_slice(bytes);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut f = self.file.lock().unwrap();
        let pending = std::mem::take(&mut f.unsynced);
        f.synced.extend_from_slice(&pending);
        Ok(())
    }

    fn replace(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut f = self.file.lock().unwrap();
        f.synced = bytes.to_vec();
        f.unsynced.clear();
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let mut f = self.file.lock().unwrap();
        let mut all = std::mem::take(&mut f.synced);
        all.extend_from_slice(&std::mem::take(&mut f.unsynced));
        all.truncate(len as usize);
        f.synced = all;
        Ok(())
    }
}
