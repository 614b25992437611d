//! The one frame format of the controller, on disk (the Raft log) and on
//! the wire (controller-to-controller messages).
//!
//! ```text
//!   0  4  length  u32 BE   bytes of kind + payload
//!   4  4  crc     u32 BE   CRC-32 (crc32fast) of kind + payload
//!   8  1  kind             what the payload is (owner-defined)
//!   9  n  payload
//! ```
//!
//! # Invariants
//! - A frame is accepted only whole, with its CRC matching and its length
//!   within the caller's bound, checked before anything is allocated.

use protobuf::Message as PbMessage;

/// Bytes before the kind: length and CRC.
pub const HEADER_BYTES: usize = 8;

/// Why a frame could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes exceeds {max}")]
    TooLarge { size: usize, max: usize },
    #[error("frame checksum mismatch")]
    Checksum,
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("frame payload does not decode: {0}")]
    Decode(String),
}

/// Appends one frame of `kind` holding `payload` to `out`.
pub fn encode(out: &mut Vec<u8>, kind: u8, payload: &[u8], max: usize) -> Result<(), FrameError> {
    let size = payload.len() + 1;
    if size > max {
        return Err(FrameError::TooLarge { size, max });
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[kind]);
    hasher.update(payload);
    // Bounded by `max` (a u32-sized limit), so the cast cannot truncate.
    out.extend_from_slice(&(size as u32).to_be_bytes());
    out.extend_from_slice(&hasher.finalize().to_be_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
    Ok(())
}

/// Appends one frame holding a protobuf message.
pub fn encode_message(
    out: &mut Vec<u8>,
    kind: u8,
    message: &impl PbMessage,
    max: usize,
) -> Result<(), FrameError> {
    let payload = message
        .write_to_bytes()
        .map_err(|e| FrameError::Decode(e.to_string()))?;
    encode(out, kind, &payload, max)
}

/// Decodes a protobuf message from a frame's payload.
pub fn decode_message<M: PbMessage>(payload: &[u8]) -> Result<M, FrameError> {
    M::parse_from_bytes(payload).map_err(|e| FrameError::Decode(e.to_string()))
}

/// The body length a header announces, refused above `max`.
pub fn body_len(header: [u8; HEADER_BYTES], max: usize) -> Result<(usize, u32), FrameError> {
    let [a, b, c, d, e, f, g, h] = header;
    let size = u32::from_be_bytes([a, b, c, d]) as usize;
    let crc = u32::from_be_bytes([e, f, g, h]);
    if size == 0 || size > max {
        return Err(FrameError::TooLarge { size, max });
    }
    Ok((size, crc))
}

/// Checks a body (kind + payload) against the header's CRC and splits it.
pub fn check_body(body: &[u8], crc: u32) -> Result<(u8, &[u8]), FrameError> {
    if crc32fast::hash(body) != crc {
        return Err(FrameError::Checksum);
    }
    let (kind, payload) = body.split_first().ok_or(FrameError::Checksum)?;
    Ok((*kind, payload))
}

/// The longest valid prefix of frames in `bytes`: each frame's kind and
/// payload, and the byte length of the prefix.
pub fn decode_prefix(bytes: &[u8], max: usize) -> (Vec<(u8, &[u8])>, usize) {
    let mut frames = Vec::new();
    let mut at = 0usize;
    while let Some(header) = bytes.get(at..at + HEADER_BYTES) {
        let Ok(header) = <[u8; HEADER_BYTES]>::try_from(header) else {
            break;
        };
        let Ok((size, crc)) = body_len(header, max) else {
            break;
        };
        let start = at + HEADER_BYTES;
        let Some(body) = bytes.get(start..start + size) else {
            break;
        };
        let Ok(frame) = check_body(body, crc) else {
            break;
        };
        frames.push(frame);
        at = start + size;
    }
    (frames, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_stops_at_a_flipped_byte_or_a_short_frame() {
        let mut bytes = Vec::new();
        encode(&mut bytes, 1, b"one", 100).unwrap();
        encode(&mut bytes, 2, b"two", 100).unwrap();
        let whole = bytes.len();
        encode(&mut bytes, 3, b"three", 100).unwrap();
        let (frames, len) = decode_prefix(&bytes, 100);
        assert_eq!(frames.len(), 3);
        assert_eq!(len, bytes.len());
        let (frames, len) = decode_prefix(&bytes[..bytes.len() - 1], 100);
        assert_eq!((frames.len(), len), (2, whole));
        let mut flipped = bytes.clone();
        flipped[whole + 10] ^= 1;
        let (frames, len) = decode_prefix(&flipped, 100);
        assert_eq!(frames, vec![(1, &b"one"[..]), (2, &b"two"[..])]);
        assert_eq!(len, whole);
        assert!(matches!(
            encode(&mut bytes, 1, &[0; 100], 100),
            Err(FrameError::TooLarge { .. })
        ));
    }
}
