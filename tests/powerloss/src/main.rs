//! `powerloss-fs <mountpoint>`: mounts an in-memory file system that keeps
//! unsynced writes and unsynced directory entries apart from synced ones,
//! and drops them on command, as a power cut would (`model.rs`).
//!
//! Driven over stdin, one command a line, each answered on stdout:
//! - `crash`: unmount, keep only what was synced, mount again; answers
//!   `crashed files_reverted=… bytes_dropped=… entries_undone=… nodes_dropped=…`.
//!   Every process using the mount must be gone first (kill it).
//! - `quit` (or end of input): unmount and exit.
//!
//! Prints `ready` once mounted. Used by `tests/powerloss/test_powerloss.py`.
//!
//! # Caveats
//! - Needs `/dev/fuse` and either root or `fusermount3` (Debian `fuse3`).
//! - If this process is killed, the mount is left dead ("Transport endpoint
//!   is not connected"): `fusermount3 -u -z <mountpoint>` clears it.

mod fuse;
mod model;

use std::io::{BufRead, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use fuser::{BackgroundSession, Config, MountOption};

use crate::fuse::PowerLossFs;
use crate::model::Model;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("POWERLOSS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,fuser=error")),
        )
        .init();
    let Some(mountpoint) = std::env::args_os().nth(1).map(PathBuf::from) else {
        bail!("usage: powerloss-fs <mountpoint>");
    };
    let meta = std::fs::metadata(&mountpoint)
        .with_context(|| format!("mountpoint {}", mountpoint.display()))?;
    let owner = (meta.uid(), meta.gid());
    let model = Arc::new(Mutex::new(Model::new()));
    let mut session = Some(mount(&model, &mountpoint, owner)?);
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        match line?.trim() {
            "crash" => {
                if let Some(s) = session.take() {
                    s.umount_and_join().context("unmount before the crash")?;
                }
                let r = model.lock().unwrap_or_else(|e| e.into_inner()).crash();
                session = Some(mount(&model, &mountpoint, owner)?);
                writeln!(
                    out,
                    "crashed files_reverted={} bytes_dropped={} entries_undone={} nodes_dropped={}",
                    r.files_reverted, r.bytes_dropped, r.entries_undone, r.nodes_dropped
                )?;
            }
            "quit" => break,
            other => writeln!(out, "error unknown command {other:?}")?,
        }
        out.flush()?;
    }
    if let Some(s) = session.take() {
        s.umount_and_join().context("unmount at exit")?;
    }
    Ok(())
}

fn mount(
    model: &Arc<Mutex<Model>>,
    mountpoint: &Path,
    (uid, gid): (u32, u32),
) -> anyhow::Result<BackgroundSession> {
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("sluice-powerloss".into()),
        MountOption::DefaultPermissions,
    ];
    let fs = PowerLossFs::new(Arc::clone(model), uid, gid);
    fuser::spawn_mount(fs, mountpoint, &config)
        .with_context(|| format!("mount FUSE at {}", mountpoint.display()))
}
