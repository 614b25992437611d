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
//! - [`reserve_for_next_read`] makes room for at most the caller's
//!   `believe_after` bytes of a frame until that many have arrived, and
//!   then for all the frame still lacks (at most `max_frame_bytes`), so
//!   the rest is read without the buffer growing again. The broker passes
//!   [`READ_RESERVE_BYTES_MAX`]: a client that announces a large frame and
//!   stalls makes it reserve at most that much. The client passes 0 and
//!   reserves a response's whole size once its prefix is in, as Kafka's
//!   `NetworkReceive` and librdkafka allocate theirs: its peer is a broker
//!   it chose, and room not yet written is address space, not memory.
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

/// The room [`reserve_for_next_read`] makes while a frame's size is
/// unknown or the frame is this small: enough for several small pipelined
/// requests per read syscall.
pub const READ_RESERVE_BYTES_MIN: usize = 8 * 1024;

/// How much of a frame the broker reads before it believes the frame's
/// size and makes room for all of it ([`reserve_for_next_read`]); also the
/// most one of the broker's reads brings.
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
/// - Size unknown, or a frame of at most [`READ_RESERVE_BYTES_MIN`]:
///   that minimum, so one read can also take the small frames pipelined
///   behind it.
/// - A larger frame: what it still lacks, and no more, once
///   `believe_after` bytes of it are buffered (its size is believed);
///   before that, room for at most `believe_after` bytes in all.
///
/// A buffer that grows copies every byte it holds; grown by a read's
/// worth at a time, or asked for more than the frame lacks near its end,
/// a frame of several MiB is copied about once more (a doubling, into
/// fresh pages each time). Here its buffer grows at most twice: to
/// `believe_after`, then to the whole frame.
///
/// Fails, reserving nothing, when the frame in progress announces a bad
/// size, so the caller closes instead of reading.
pub fn reserve_for_next_read(
    buf: &mut BytesMut,
    max_frame_bytes: usize,
    believe_after: usize,
) -> Result<()> {
    let room = match frame_size_at(buf, max_frame_bytes)? {
        Some(size) if FRAME_SIZE_PREFIX_BYTES + size > READ_RESERVE_BYTES_MIN => {
            let buffered = buf.len();
            let missing = (FRAME_SIZE_PREFIX_BYTES + size).saturating_sub(buffered);
            if buffered >= believe_after {
                missing
            } else {
                missing.min(believe_after - buffered)
            }
        }
        _ => READ_RESERVE_BYTES_MIN,
    };
    buf.reserve(room);
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
        assert_eq!(reserve_for_next_read(&mut b, 1024, 0), Err(err));
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
        reserve_for_next_read(&mut b, 1 << 30, 0).unwrap();
        assert!(b.capacity() >= READ_RESERVE_BYTES_MIN);

        // The broker's way: a size is not believed before a full read's
        // worth of the frame has arrived.
        let mut b = BytesMut::from(&(1i32 << 29).to_be_bytes()[..]);
        reserve_for_next_read(&mut b, 1 << 30, READ_RESERVE_BYTES_MAX).unwrap();
        assert!(b.capacity() >= READ_RESERVE_BYTES_MAX);
        assert!(
            b.capacity() < 4 * READ_RESERVE_BYTES_MAX,
            "{}",
            b.capacity()
        );
    }

    /// Feeds `frame` to a buffer as a socket would, at most `read_max`
    /// bytes per read into the room `reserve_for_next_read` made, and
    /// decodes it; returns the frame and the bytes the buffer's growth
    /// copied (what was held each time its allocation moved).
    fn read_in_steps(frame: &[u8], believe_after: usize, read_max: usize) -> (Bytes, usize) {
        let mut buf = BytesMut::new();
        let (mut fed, mut copied) = (0, 0);
        loop {
            if let Some(decoded) = decode_frame(&mut buf, 1 << 30).unwrap() {
                return (decoded, copied);
            }
            let (at, held) = (buf.as_ptr(), buf.len());
            reserve_for_next_read(&mut buf, 1 << 30, believe_after).unwrap();
            if held > 0 && buf.as_ptr() != at {
                copied += held;
            }
            let n = (buf.capacity() - buf.len())
                .min(read_max)
                .min(frame.len() - fed);
            assert!(n > 0, "no room made at {fed} of {}", frame.len());
            buf.extend_from_slice(&frame[fed..fed + n]);
            fed += n;
        }
    }

    #[test]
    fn a_large_frame_is_read_into_one_allocation_once_its_size_is_believed() {
        let body: Vec<u8> = (0..5 * READ_RESERVE_BYTES_MAX + 3)
            .map(|i| (i % 251) as u8)
            .collect();
        let frame = framed(&body);
        let read_max = 64 * 1024;

        // The client's way: the whole size is reserved once the prefix is
        // in; only the first read's bytes move, once.
        let (decoded, copied) = read_in_steps(&frame, 0, read_max);
        assert_eq!(decoded, body);
        assert!(copied <= READ_RESERVE_BYTES_MIN, "client copied {copied}");

        // The broker's way: room for a full read's worth, then the whole.
        let (decoded, copied) = read_in_steps(&frame, READ_RESERVE_BYTES_MAX, read_max);
        assert_eq!(decoded, body);
        assert!(
            copied <= READ_RESERVE_BYTES_MIN + READ_RESERVE_BYTES_MAX,
            "broker copied {copied}"
        );
    }
}
