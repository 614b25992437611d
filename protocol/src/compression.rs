//! The four Kafka codecs behind one enum, with a hard bound on output.
//!
//! A compressed RecordBatch v2 compresses all of its records as one unit
//! (the bytes after the 61-byte header). The codec is named by attribute
//! bits 0-2, [`CompressionType`]. What each codec's bytes look like:
//!
//! ```text
//! gzip    RFC 1952 members (concatenated members are read as one stream)
//! snappy  raw snappy block (librdkafka, kafka-python), or xerial framing
//!         (the Java client):
//!           magic 82 'S' 'N' 'A' 'P' 'P' 'Y' 00 | version i32 | compat i32
//!           then blocks of  length i32 (big-endian) | raw snappy block
//! lz4     LZ4 frame format (magic 04 22 4D 18), not raw LZ4 blocks
//! zstd    zstd frames
//! ```
//!
//! kafka-protocol's own decompression copies into a growing buffer with no
//! cap, so a few kilobytes of client input could become gigabytes: it is
//! never used for client data. Everything here decompresses into a buffer
//! that never exceeds `output_bytes_max + 1` bytes, and fails with
//! [`DecodeError::DecompressedTooLarge`] as soon as the output would pass
//! the bound.
//!
//! # Invariants
//! - `decompress(c, compress(c, x, l)?, n) == x` for every codec and any
//!   `n >= x.len()` (property-tested).
//! - Output memory is at most `output_bytes_max + 1` bytes; codec working
//!   memory is bounded by the codec (lz4: two blocks of at most 8 MiB;
//!   zstd: a window of at most 2^[`ZSTD_WINDOW_LOG_MAX`] bytes).
//!
//! # Limits
//! - [`decompress_within`] asks its caller before the output buffer grows
//!   (a broker-wide budget of bytes being decompressed, say); a refusal
//!   stops with [`DecodeError::DecompressionBudgetExhausted`] before the
//!   allocation.
//! - zstd frames whose window exceeds 2^[`ZSTD_WINDOW_LOG_MAX`] (128 MiB,
//!   zstd's own default limit) are refused.
//! - zstd contexts are created once per thread and reused
//!   (`zstd_contexts.rs`): one per batch cost more than the decompression
//!   of a small batch.
//!
//! # Caveats
//! - `compress` writes snappy in xerial framing, as the Java producer does:
//!   every Kafka client reads it. LZ4 without a level uses lz4_flex (one
//!   fast level, what the client's producer wants); with a level (the
//!   broker's `compression.lz4.level`) liblz4, whose levels 3+ are LZ4-HC
//!   and several times slower.
//!
//! # References
//! Kafka's `CompressionType`, `KafkaLZ4BlockOutputStream`,
//! xerial `SnappyOutputStream`; librdkafka `rdkafka_lz4.c`, `snappy.c`.

use std::io::{self, Read, Write};

use bytes::Bytes;

use zstd::zstd_safe;

use crate::error::{DecodeError, Result};
pub use crate::record_batch::CompressionType;
use crate::zstd_contexts;

/// Largest zstd window accepted: 2^27 = 128 MiB, zstd's default decoder
/// limit (`ZSTD_WINDOWLOG_LIMIT_DEFAULT`). Streaming producers at high
/// levels declare windows this large; anything above is a hostile frame.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// The 8-byte header of xerial-framed snappy (the Java client's format).
pub const XERIAL_SNAPPY_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];

/// Uncompressed bytes per xerial block when compressing (xerial's default).
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;

/// Bytes after the magic: version and compatible version, both i32 = 1.
const XERIAL_VERSION_BYTES: usize = 8;

/// Smallest first allocation for output of unknown size.
const OUTPUT_GUESS_BYTES_MIN: usize = 4 * 1024;

/// Asked before decompression output grows: may the output buffer hold
/// this many bytes in total? `false` stops the decompression.
pub type OutputGrowth<'a> = &'a mut dyn FnMut(usize) -> bool;

/// Decompresses `input` with `codec`, refusing to produce more than
/// `output_bytes_max` bytes. `CompressionType::None` returns a copy.
pub fn decompress(codec: CompressionType, input: &[u8], output_bytes_max: usize) -> Result<Bytes> {
    decompress_within(codec, input, output_bytes_max, &mut |_| true)
}

/// [`decompress`], asking `grow` before every growth of the output buffer
/// (with the buffer's new total size).
pub fn decompress_within(
    codec: CompressionType,
    input: &[u8],
    output_bytes_max: usize,
    grow: OutputGrowth<'_>,
) -> Result<Bytes> {
    let too_large = DecodeError::DecompressedTooLarge {
        codec,
        max: output_bytes_max,
    };
    let guess = input.len().saturating_mul(4);
    match codec {
        CompressionType::None if input.len() > output_bytes_max => Err(too_large),
        CompressionType::None if !grow(input.len()) => Err(exhausted(codec)),
        CompressionType::None => Ok(Bytes::copy_from_slice(input)),
        CompressionType::Gzip => read_bounded(
            codec,
            flate2::read::MultiGzDecoder::new(input),
            output_bytes_max,
            guess,
            grow,
        ),
        CompressionType::Snappy => decompress_snappy(input, output_bytes_max, grow),
        CompressionType::Lz4 => read_bounded(
            codec,
            lz4_flex::frame::FrameDecoder::new(input),
            output_bytes_max,
            guess,
            grow,
        ),
        CompressionType::Zstd => zstd_contexts::with_decompression(|ctx| {
            if let Some(one_shot) = zstd_decompress_sized(ctx, input, output_bytes_max, grow) {
                return one_shot;
            }
            let decoder = zstd::stream::read::Decoder::with_context(input, ctx);
            read_bounded(codec, decoder, output_bytes_max, guess, grow)
        })
        .unwrap_or_else(|| Err(codec_error(codec, &"no memory for a zstd context"))),
    }
}

/// A zstd frame that declares its content size (librdkafka's, and this
/// crate's [`compress`]) decompressed in one call into a buffer of exactly
/// that size: no zero-filled guess (4 KiB at least, for the ~500 B batch
/// of a metrics producer), no streaming window buffers. `None` when the
/// input is not exactly one frame declaring its size (several
/// concatenated frames, a cut frame, garbage): the streaming path, bounded
/// as before, decides.
/// A declared size above `output_bytes_max` is refused as too large; the
/// output can never exceed the declared size, so no window limit is
/// needed here (the streaming path keeps [`ZSTD_WINDOW_LOG_MAX`]).
fn zstd_decompress_sized(
    ctx: &mut zstd_safe::DCtx<'static>,
    input: &[u8],
    output_bytes_max: usize,
    grow: OutputGrowth<'_>,
) -> Option<Result<Bytes>> {
    let codec = CompressionType::Zstd;
    // Exactly one whole frame: several frames' total is not declared
    // anywhere, and a cut or garbled one gets the streaming path's error.
    if zstd_safe::find_frame_compressed_size(input) != Ok(input.len()) {
        return None;
    }
    let declared = zstd_safe::get_frame_content_size(input).ok()??;
    let Ok(size) = usize::try_from(declared) else {
        return Some(Err(DecodeError::DecompressedTooLarge {
            codec,
            max: output_bytes_max,
        }));
    };
    if size > output_bytes_max {
        return Some(Err(DecodeError::DecompressedTooLarge {
            codec,
            max: output_bytes_max,
        }));
    }
    if !grow(size) {
        return Some(Err(exhausted(codec)));
    }
    let mut out = Vec::with_capacity(size);
    match ctx.decompress(&mut out, input) {
        Ok(_) => Some(Ok(Bytes::from(out))),
        Err(code) => Some(Err(codec_error(codec, &zstd_safe::get_error_name(code)))),
    }
}

/// [`compress`], appending the compressed bytes to `out` (after what it
/// holds: a batch's header, say). zstd writes straight into `out`'s spare
/// capacity, reserved to `compress_bound`; the other codecs are compressed
/// apart and copied in (the producer's default codecs are none and zstd).
pub fn compress_append(
    codec: CompressionType,
    input: &[u8],
    level: Option<i32>,
    out: &mut Vec<u8>,
) -> Result<()> {
    match codec {
        CompressionType::Zstd => zstd_compress_append(input, level, out),
        codec => {
            out.extend_from_slice(&compress(codec, input, level)?);
            Ok(())
        }
    }
}

/// Compresses `input` with `codec` at `level` (`None`: the codec's
/// default — gzip 6, zstd 3, lz4 lz4_flex's one fast level; snappy has no
/// levels). An lz4 `level` (1–17, KIP-390) goes through liblz4.
pub fn compress(codec: CompressionType, input: &[u8], level: Option<i32>) -> Result<Bytes> {
    let io_error = |e: io::Error| codec_error(codec, &e);
    match codec {
        CompressionType::None => Ok(Bytes::copy_from_slice(input)),
        CompressionType::Gzip => {
            let level = level.map_or(6, |l| l.clamp(0, 9).unsigned_abs());
            let out = Vec::with_capacity(input.len() / 2 + 64);
            let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::new(level));
            encoder.write_all(input).map_err(io_error)?;
            encoder.finish().map(Bytes::from).map_err(io_error)
        }
        CompressionType::Snappy => compress_xerial_snappy(input),
        CompressionType::Lz4 => match level {
            Some(level) => compress_lz4_level(input, level),
            None => compress_lz4_fast(input),
        },
        CompressionType::Zstd => {
            let mut out = Vec::new();
            zstd_compress_append(input, level, &mut out)?;
            Ok(Bytes::from(out))
        }
    }
}

/// LZ4 frame through lz4_flex (its one fast level).
fn compress_lz4_fast(input: &[u8]) -> Result<Bytes> {
    let codec = CompressionType::Lz4;
    let info = lz4_flex::frame::FrameInfo::new()
        .block_size(lz4_flex::frame::BlockSize::Max64KB)
        .block_mode(lz4_flex::frame::BlockMode::Independent);
    let out = Vec::with_capacity(input.len() / 2 + 64);
    let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, out);
    encoder
        .write_all(input)
        .map_err(|e| codec_error(codec, &e))?;
    encoder
        .finish()
        .map(Bytes::from)
        .map_err(|e| codec_error(codec, &e))
}

/// zstd at `level` (`None`: 3, zstd's and Kafka's default), appended to
/// `out`. One-shot (`ZSTD_compress2`): zstd knows the input's size, so it
/// sizes its tables and window to it (a ~500 B batch gets small ones, not
/// level 3's 2 MiB window) and writes the size into the frame header,
/// which lets the reader decompress in one call into an exact buffer.
fn zstd_compress_append(input: &[u8], level: Option<i32>, out: &mut Vec<u8>) -> Result<()> {
    let codec = CompressionType::Zstd;
    let level = level.unwrap_or(3);
    zstd_contexts::with_compression(level, |ctx| {
        let start = out.len();
        out.reserve(zstd_safe::compress_bound(input.len()));
        let mut after = io::Cursor::new(&mut *out);
        after.set_position(start as u64);
        match ctx.compress2(&mut after, input) {
            Ok(_) => Ok(()),
            Err(code) => {
                // A failed one-shot leaves its frame open: start afresh.
                let _ = ctx.reset(zstd_safe::ResetDirective::SessionOnly);
                out.truncate(start);
                Err(codec_error(codec, &zstd_safe::get_error_name(code)))
            }
        }
    })
    .unwrap_or_else(|| {
        Err(codec_error(
            codec,
            &format!("no zstd context at level {level}"),
        ))
    })
}

/// LZ4 frame at `level` through liblz4 (the `lz4` crate; levels 3 and up
/// are LZ4-HC), laid out as Kafka's `KafkaLZ4BlockOutputStream` writes it:
/// 64 KiB independent blocks, no block or content checksum.
fn compress_lz4_level(input: &[u8], level: i32) -> Result<Bytes> {
    let codec = CompressionType::Lz4;
    let out = Vec::with_capacity(input.len() / 2 + 64);
    let mut encoder = lz4::EncoderBuilder::new()
        .level(level.clamp(1, 17).unsigned_abs())
        .block_size(lz4::BlockSize::Max64KB)
        .block_mode(lz4::BlockMode::Independent)
        .checksum(lz4::ContentChecksum::NoChecksum)
        .build(out)
        .map_err(|e| codec_error(codec, &e))?;
    encoder
        .write_all(input)
        .map_err(|e| codec_error(codec, &e))?;
    let (out, finished) = encoder.finish();
    finished.map_err(|e| codec_error(codec, &e))?;
    Ok(Bytes::from(out))
}

fn exhausted(codec: CompressionType) -> DecodeError {
    DecodeError::DecompressionBudgetExhausted { codec }
}

fn codec_error(codec: CompressionType, e: &dyn std::fmt::Display) -> DecodeError {
    DecodeError::Codec {
        codec,
        reason: e.to_string(),
    }
}

/// Reads `reader` to its end into a buffer that never holds more than
/// `max + 1` bytes. The buffer doubles from `size_guess`, so the total
/// zero-filling work stays linear in the output.
fn read_bounded(
    codec: CompressionType,
    mut reader: impl Read,
    max: usize,
    size_guess: usize,
    grow: OutputGrowth<'_>,
) -> Result<Bytes> {
    let cap = max.saturating_add(1);
    let first = size_guess.max(OUTPUT_GUESS_BYTES_MIN).min(cap);
    if !grow(first) {
        return Err(exhausted(codec));
    }
    let mut out = vec![0u8; first];
    let mut filled = 0;
    loop {
        if filled == out.len() {
            let grown = out.len().saturating_mul(2).min(cap);
            if grown == out.len() {
                return Err(DecodeError::DecompressedTooLarge { codec, max });
            }
            if !grow(grown) {
                return Err(exhausted(codec));
            }
            out.resize(grown, 0);
        }
        let dst = out.get_mut(filled..).unwrap_or_default();
        match reader.read(dst) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(codec_error(codec, &e)),
        }
        if filled > max {
            return Err(DecodeError::DecompressedTooLarge { codec, max });
        }
    }
    out.truncate(filled);
    Ok(Bytes::from(out))
}

fn decompress_snappy(input: &[u8], max: usize, grow: OutputGrowth<'_>) -> Result<Bytes> {
    let mut out = Vec::new();
    match input.strip_prefix(&XERIAL_SNAPPY_MAGIC) {
        Some(rest) => {
            let mut blocks = rest
                .get(XERIAL_VERSION_BYTES..)
                .ok_or_else(|| codec_error(CompressionType::Snappy, &"xerial header truncated"))?;
            while !blocks.is_empty() {
                let (len, rest) = split_block_length(blocks)?;
                let block = rest.get(..len).ok_or_else(|| {
                    codec_error(CompressionType::Snappy, &"xerial block truncated")
                })?;
                snappy_block_into(block, &mut out, max, grow)?;
                blocks = rest.get(len..).unwrap_or_default();
            }
        }
        None => snappy_block_into(input, &mut out, max, grow)?,
    }
    Ok(Bytes::from(out))
}

/// The big-endian i32 length of a xerial block and the bytes after it.
fn split_block_length(buf: &[u8]) -> Result<(usize, &[u8])> {
    let (len, rest) = buf
        .split_first_chunk::<4>()
        .ok_or_else(|| codec_error(CompressionType::Snappy, &"xerial block length truncated"))?;
    let len = usize::try_from(i32::from_be_bytes(*len))
        .map_err(|_| codec_error(CompressionType::Snappy, &"negative xerial block length"))?;
    Ok((len, rest))
}

/// Appends one raw snappy block to `out`, checking the length the block
/// announces against what `max` still allows before allocating for it.
fn snappy_block_into(
    block: &[u8],
    out: &mut Vec<u8>,
    max: usize,
    grow: OutputGrowth<'_>,
) -> Result<()> {
    let codec = CompressionType::Snappy;
    let len = snap::raw::decompress_len(block).map_err(|e| codec_error(codec, &e))?;
    let start = out.len();
    if len > max.saturating_sub(start) {
        return Err(DecodeError::DecompressedTooLarge { codec, max });
    }
    // `Vec` may round its capacity up; ask for what the vector can hold.
    if start + len > out.capacity() && !grow(start + len) {
        return Err(exhausted(codec));
    }
    out.reserve_exact(len);
    out.resize(start + len, 0);
    let dst = out.get_mut(start..).unwrap_or_default();
    let written = snap::raw::Decoder::new()
        .decompress(block, dst)
        .map_err(|e| codec_error(codec, &e))?;
    out.truncate(start + written);
    Ok(())
}

fn compress_xerial_snappy(input: &[u8]) -> Result<Bytes> {
    let mut out =
        Vec::with_capacity(XERIAL_SNAPPY_MAGIC.len() + XERIAL_VERSION_BYTES + input.len());
    out.extend_from_slice(&XERIAL_SNAPPY_MAGIC);
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    let mut encoder = snap::raw::Encoder::new();
    for chunk in input.chunks(XERIAL_BLOCK_BYTES) {
        let block = encoder
            .compress_vec(chunk)
            .map_err(|e| codec_error(CompressionType::Snappy, &e))?;
        // A block of at most 32 KiB compresses to well under i32::MAX.
        let len = i32::try_from(block.len()).map_err(|_| DecodeError::EncodeOverflow {
            field: "xerial block length",
            value: block.len() as u64,
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&block);
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8 ^ (i / 7) as u8).collect()
    }

    #[test]
    fn round_trips_every_codec_at_several_sizes() {
        for codec in CompressionType::ALL {
            for len in [
                0,
                1,
                100,
                XERIAL_BLOCK_BYTES,
                3 * XERIAL_BLOCK_BYTES + 17,
                1 << 20,
            ] {
                let input = sample(len);
                let packed = compress(codec, &input, None).unwrap();
                let unpacked = decompress(codec, &packed, len).unwrap();
                assert_eq!(unpacked, input, "{codec:?} len {len}");
            }
        }
    }

    #[test]
    fn output_bound_is_exact() {
        let input = sample(10_000);
        for codec in CompressionType::ALL {
            let packed = compress(codec, &input, None).unwrap();
            assert!(decompress(codec, &packed, 10_000).is_ok(), "{codec:?}");
            assert_eq!(
                decompress(codec, &packed, 9_999),
                Err(DecodeError::DecompressedTooLarge { codec, max: 9_999 }),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn zip_bombs_are_refused_at_the_bound() {
        // 64 MiB of zeros compresses to a few kilobytes with every codec;
        // with a 1 MiB bound each must stop early with an error.
        let zeros = vec![0u8; 64 << 20];
        for codec in CompressionType::ALL.into_iter().skip(1) {
            let bomb = compress(codec, &zeros, None).unwrap();
            assert!(
                bomb.len() < zeros.len() / 10,
                "{codec:?} bomb is {} bytes",
                bomb.len()
            );
            assert_eq!(
                decompress(codec, &bomb, 1 << 20),
                Err(DecodeError::DecompressedTooLarge {
                    codec,
                    max: 1 << 20
                }),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn growth_is_asked_for_and_a_refusal_stops_before_allocating() {
        let input = sample(1 << 20);
        for codec in CompressionType::ALL {
            let packed = compress(codec, &input, None).unwrap();
            let mut asked = Vec::new();
            let out = decompress_within(codec, &packed, 1 << 20, &mut |n| {
                asked.push(n);
                true
            })
            .unwrap();
            assert_eq!(out.len(), input.len(), "{codec:?}");
            assert!(!asked.is_empty(), "{codec:?} never asked");
            assert!(
                asked.iter().all(|n| *n <= (1 << 20) + 1),
                "{codec:?}: {asked:?}"
            );
            let mut budget = 64 * 1024;
            assert_eq!(
                decompress_within(codec, &packed, 1 << 20, &mut |n| n <= budget),
                Err(DecodeError::DecompressionBudgetExhausted { codec }),
                "{codec:?}"
            );
            budget = usize::MAX;
            assert!(decompress_within(codec, &packed, 1 << 20, &mut |n| n <= budget).is_ok());
        }
    }

    #[test]
    fn raw_snappy_as_librdkafka_writes_it_is_accepted() {
        let input = sample(100_000);
        let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
        assert_eq!(
            decompress(CompressionType::Snappy, &raw, input.len()).unwrap(),
            input
        );
        // A raw block claiming more than the bound is refused before allocating.
        assert!(matches!(
            decompress(CompressionType::Snappy, &raw, 1000),
            Err(DecodeError::DecompressedTooLarge { .. })
        ));
    }

    #[test]
    fn xerial_snappy_is_what_compress_writes() {
        let packed = compress(CompressionType::Snappy, b"hello hello hello", None).unwrap();
        assert!(packed.starts_with(&XERIAL_SNAPPY_MAGIC));
        let mut truncated = packed.to_vec();
        truncated.pop();
        assert!(matches!(
            decompress(CompressionType::Snappy, &truncated, 1 << 20),
            Err(DecodeError::Codec { .. })
        ));
    }

    #[test]
    fn garbage_is_a_codec_error() {
        for codec in CompressionType::ALL.into_iter().skip(1) {
            let result = decompress(codec, b"definitely not compressed data", 1 << 20);
            assert!(
                matches!(result, Err(DecodeError::Codec { .. })),
                "{codec:?}: {result:?}"
            );
        }
    }

    #[test]
    fn a_reused_zstd_context_is_clean_after_failures_and_level_changes() {
        let codec = CompressionType::Zstd;
        let input = sample(200_000);
        let at_1 = compress(codec, &input, Some(1)).unwrap();
        let at_19 = compress(codec, &input, Some(19)).unwrap();
        assert!(at_19.len() < at_1.len(), "the level reached the context");
        assert_eq!(compress(codec, &input, Some(1)).unwrap(), at_1, "and back");
        // A frame cut short, a frame over the output bound and garbage each
        // fail midway through a session; the thread's context decodes the
        // next frame whole.
        let cut = &at_1[..at_1.len() / 2];
        for bad in [cut, b"not zstd at all".as_slice()] {
            assert!(decompress(codec, bad, 1 << 20).is_err());
            assert_eq!(decompress(codec, &at_19, input.len()).unwrap(), input);
        }
        assert!(decompress(codec, &at_1, 1000).is_err());
        assert_eq!(decompress(codec, &at_1, input.len()).unwrap(), input);
        // The window limit set once on the context still holds: a frame
        // declaring a window above it is refused.
        let mut big = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        big.window_log(ZSTD_WINDOW_LOG_MAX + 1).unwrap();
        big.long_distance_matching(true).unwrap();
        std::io::Write::write_all(&mut big, &input).unwrap();
        let big = big.finish().unwrap();
        assert!(
            decompress(codec, &big, 1 << 30).is_err(),
            "window above the limit"
        );
        assert_eq!(decompress(codec, &at_1, input.len()).unwrap(), input);
    }
}
