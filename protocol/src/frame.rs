//! Kafka's frame: a 4-byte big-endian size, then that many bytes.
//!
//! ```text
//! offset size field
//!      0    4 size (i32, big-endian): bytes that follow, header + body
//!      4 size request or response header, then the message body
//! ```
//!
//! Requests and responses are framed the same way. Decoding splits the frame
//! off the connection's read buffer without copying: the returned [`Bytes`]
//! shares the buffer's allocation, and so do the header and body sliced
//! from it later (the produce path's record batches stay in that
//! allocation until they are appended).
//!
//! # Invariants
//! - A size prefix is judged before any byte of the frame is reserved or
//!   allocated: a negative size or one above `max_frame_bytes` is
//!   [`DecodeError::FrameTooLarge`], and the connection must close (the
//!   stream cannot be resynced after a bad prefix).
//! - "Need more bytes" is `Ok(None)`, never an error, and consumes nothing.
//!
//! # Limits
//! - [`SOCKET_REQUEST_MAX_BYTES_DEFAULT`] (100 MiB) mirrors Kafka's
//!   `socket.request.max.bytes`; the broker passes its configured value.
//! - [`reserve_for_next_read`] grows the read buffer by at most
//!   [`READ_RESERVE_BYTES_MAX`] per call, so a peer that announces a large
//!   frame and then stalls holds at most that much extra memory per read,
//!   not the whole announced size.
//!
//! # References
//! "Protocol Primitive Types" and "Common Request and Response Structure" in
//! the Kafka protocol guide; Kafka's `NetworkReceive`.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, Result};

/// Bytes of the size prefix that starts every frame.
pub const FRAME_SIZE_PREFIX_BYTES: usize = 4;

/// Kafka's default `socket.request.max.bytes`: 100 MiB.
pub const SOCKET_REQUEST_MAX_BYTES_DEFAULT: usize = 100 * 1024 * 1024;

/// Smallest growth [`reserve_for_next_read`] asks for: enough for several
/// small pipelined requests per read syscall.
pub const READ_RESERVE_BYTES_MIN: usize = 8 * 1024;

/// Largest growth [`reserve_for_next_read`] asks for in one call.
pub const READ_RESERVE_BYTES_MAX: usize = 1024 * 1024;

const _: () = assert!(READ_RESERVE_BYTES_MIN <= READ_RESERVE_BYTES_MAX);
// A frame size is an i32 on the wire; a default above it could never be hit.
const _: () = assert!(SOCKET_REQUEST_MAX_BYTES_DEFAULT <= i32::MAX as usize);

/// The size the frame at the start of `buf` announces (excluding the
/// prefix), or `Ok(None)` when the prefix itself is incomplete.
///
/// Errors when the size is negative or above `max_frame_bytes`.
pub fn frame_size_at(buf: &[u8], max_frame_bytes: usize) -> Result<Option<usize>> {
    let Some(prefix) = buf.first_chunk::<FRAME_SIZE_PREFIX_BYTES>() else {
        return Ok(None);
    };
    let size = i32::from_be_bytes(*prefix);
    match usize::try_from(size) {
        Ok(size) if size <= max_frame_bytes => Ok(Some(size)),
        _ => Err(DecodeError::FrameTooLarge {
            size: i64::from(size),
            max: max_frame_bytes,
        }),
    }
}

/// Splits one whole frame off the front of `buf`, without its size prefix.
///
/// `Ok(None)` when `buf` does not yet hold the whole frame (nothing is
/// consumed). The returned bytes share `buf`'s allocation.
pub fn decode_frame(buf: &mut BytesMut, max_frame_bytes: usize) -> Result<Option<Bytes>> {
    let Some(size) = frame_size_at(buf, max_frame_bytes)? else {
        return Ok(None);
    };
    let whole = FRAME_SIZE_PREFIX_BYTES + size;
    if buf.len() < whole {
        return Ok(None);
    }
    let mut frame = buf.split_to(whole);
    frame.advance(FRAME_SIZE_PREFIX_BYTES);
    Ok(Some(frame.freeze()))
}

/// Makes room in `buf` for the next socket read.
///
/// Reserves what the frame in progress still lacks, clamped to
/// [`READ_RESERVE_BYTES_MIN`]`..=`[`READ_RESERVE_BYTES_MAX`]; with no frame
/// in progress, the minimum. Fails, reserving nothing, when the frame in
/// progress announces a bad size, so the caller closes instead of reading.
pub fn reserve_for_next_read(buf: &mut BytesMut, max_frame_bytes: usize) -> Result<()> {
    let missing = match frame_size_at(buf, max_frame_bytes)? {
        Some(size) => (FRAME_SIZE_PREFIX_BYTES + size).saturating_sub(buf.len()),
        None => FRAME_SIZE_PREFIX_BYTES.saturating_sub(buf.len()),
    };
    buf.reserve(missing.clamp(READ_RESERVE_BYTES_MIN, READ_RESERVE_BYTES_MAX));
    Ok(())
}

/// The 4-byte prefix for a frame of `size` bytes (header + body).
pub fn frame_size_prefix(size: usize) -> Result<[u8; FRAME_SIZE_PREFIX_BYTES]> {
    i32::try_from(size)
        .map(i32::to_be_bytes)
        .map_err(|_| DecodeError::EncodeOverflow {
            field: "frame size",
            value: size as u64,
        })
}

/// Writes `body` as one frame (size prefix, then the bytes) into `out`.
pub fn encode_frame(out: &mut BytesMut, body: &[u8]) -> Result<()> {
    let prefix = frame_size_prefix(body.len())?;
    out.reserve(FRAME_SIZE_PREFIX_BYTES + body.len());
    out.put_slice(&prefix);
    out.put_slice(body);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(body: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        encode_frame(&mut b, body).unwrap();
        b
    }

    #[test]
    fn partial_prefix_and_partial_body_need_more_bytes() {
        let whole = framed(b"hello");
        for cut in 0..whole.len() {
            let mut b = BytesMut::from(&whole[..cut]);
            assert_eq!(decode_frame(&mut b, 1024), Ok(None), "cut at {cut}");
            assert_eq!(b.len(), cut, "nothing consumed at cut {cut}");
        }
    }

    #[test]
    fn back_to_back_frames_split_in_order() {
        let mut b = framed(b"one");
        b.extend_from_slice(&framed(b""));
        b.extend_from_slice(&framed(b"three"));
        b.extend_from_slice(&[0, 0]);
        assert_eq!(decode_frame(&mut b, 1024).unwrap().unwrap(), &b"one"[..]);
        assert_eq!(decode_frame(&mut b, 1024).unwrap().unwrap(), &b""[..]);
        assert_eq!(decode_frame(&mut b, 1024).unwrap().unwrap(), &b"three"[..]);
        assert_eq!(decode_frame(&mut b, 1024), Ok(None));
        assert_eq!(&b[..], &[0, 0]);
    }

    #[test]
    fn oversized_and_negative_sizes_fail_before_reserving() {
        let mut b = BytesMut::from(&(1025i32).to_be_bytes()[..]);
        let capacity = b.capacity();
        let err = DecodeError::FrameTooLarge {
            size: 1025,
            max: 1024,
        };
        assert_eq!(decode_frame(&mut b, 1024), Err(err.clone()));
        assert_eq!(reserve_for_next_read(&mut b, 1024), Err(err));
        assert_eq!(b.capacity(), capacity, "nothing reserved");

        let mut b = BytesMut::from(&(-1i32).to_be_bytes()[..]);
        assert_eq!(
            decode_frame(&mut b, usize::MAX),
            Err(DecodeError::FrameTooLarge {
                size: -1,
                max: usize::MAX
            })
        );
    }

    #[test]
    fn reserve_is_bounded_by_what_the_frame_lacks_and_the_cap() {
        let mut b = BytesMut::new();
        reserve_for_next_read(&mut b, 1 << 30).unwrap();
        assert!(b.capacity() >= READ_RESERVE_BYTES_MIN);

        let mut b = BytesMut::from(&(1i32 << 29).to_be_bytes()[..]);
        reserve_for_next_read(&mut b, 1 << 30).unwrap();
        assert!(b.capacity() >= READ_RESERVE_BYTES_MAX);
        assert!(
            b.capacity() < 4 * READ_RESERVE_BYTES_MAX,
            "{}",
            b.capacity()
        );
    }
}
