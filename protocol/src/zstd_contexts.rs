//! zstd contexts kept per thread and reused for every frame.
//!
//! Creating a zstd context allocates and initialises its tables (tens to
//! hundreds of KiB): per batch, that was 23 % of the broker's CPU in the
//! metrics scenario, where 100
//! producers send ~100 K small zstd batches a second (`docs/benchmarks.md`,
//! "zstd contexts reused"). Each thread keeps one decompression context
//! (with the window limit set once) and one compression context (its level
//! set per call), as librdkafka and the Java client keep theirs.
//!
//! # Invariants
//! - A context is lent to one call at a time (`RefCell`); a nested use on
//!   the same thread, which nothing here does, would get a fresh context
//!   rather than fail.
//! - A borrowed decompression context starts a new session
//!   (`Decoder::with_context` resets it) and keeps its parameters; an error
//!   leaves it reusable.
//! - Memory: at most one context of each kind per thread that ever
//!   (de)compressed zstd, kept until the thread ends.

use std::cell::RefCell;

use zstd::zstd_safe::{CCtx, CParameter, DCtx, DParameter};

use crate::compression::ZSTD_WINDOW_LOG_MAX;

thread_local! {
    static DECOMPRESSION: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
    static COMPRESSION: RefCell<Option<CCtx<'static>>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's decompression context (windows above
/// 2^[`ZSTD_WINDOW_LOG_MAX`] refused). `None` when a context cannot be
/// created (out of memory).
pub(crate) fn with_decompression<T>(f: impl FnOnce(&mut DCtx<'static>) -> T) -> Option<T> {
    let fresh = || {
        let mut ctx = DCtx::try_create()?;
        ctx.set_parameter(DParameter::WindowLogMax(ZSTD_WINDOW_LOG_MAX))
            .ok()?;
        Some(ctx)
    };
    DECOMPRESSION.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => {
            if slot.is_none() {
                *slot = fresh();
            }
            slot.as_mut().map(f)
        }
        Err(_) => fresh().as_mut().map(f),
    })
}

/// Runs `f` with this thread's compression context set to `level`.
/// `None` when a context cannot be created or refuses the level.
pub(crate) fn with_compression<T>(
    level: i32,
    f: impl FnOnce(&mut CCtx<'static>) -> T,
) -> Option<T> {
    let set_level =
        |ctx: &mut CCtx<'static>| ctx.set_parameter(CParameter::CompressionLevel(level)).ok();
    COMPRESSION.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => {
            if slot.is_none() {
                *slot = CCtx::try_create();
            }
            let ctx = slot.as_mut()?;
            set_level(ctx)?;
            Some(f(ctx))
        }
        Err(_) => {
            let mut ctx = CCtx::try_create()?;
            set_level(&mut ctx)?;
            Some(f(&mut ctx))
        }
    })
}
