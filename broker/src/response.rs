//! What a handler hands back to its connection: a response frame now, one
//! that completes later (a produce waiting for durability, a fetch waiting
//! for data), or nothing (acks=0).
//!
//! A [`ResponseFrame`] is the whole frame, size prefix included. A fetch
//! response is a small encoded head followed by parts that are either
//! encoded bytes or file regions of segments, gathered into one `writev`
//! from the segments' mappings.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use sluice_storage::FileRegion;

/// One piece of a response frame.
#[derive(Debug)]
pub enum FramePart {
    Bytes(Bytes),
    /// Record bytes sent from the segment file without entering user space.
    Region(FileRegion),
}

/// A complete response frame, ready to write.
#[derive(Debug)]
pub enum ResponseFrame {
    /// Size prefix, header and body in one buffer.
    Encoded(Bytes),
    /// Written part by part, in order.
    Parts(Vec<FramePart>),
}

impl ResponseFrame {
    /// Bytes on the wire, size prefix included.
    pub fn len(&self) -> usize {
        match self {
            Self::Encoded(b) => b.len(),
            Self::Parts(parts) => parts
                .iter()
                .map(|p| match p {
                    FramePart::Bytes(b) => b.len(),
                    FramePart::Region(r) => r.len() as usize,
                })
                .sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A response that completes later; `Err` (it could not be encoded) closes
/// the connection, since the client would otherwise wait forever.
pub type Deferred = Pin<Box<dyn Future<Output = Result<ResponseFrame, String>> + Send + 'static>>;

/// What a connection does after dispatching one request.
pub enum Reply {
    Now(ResponseFrame),
    Later(Deferred),
    /// acks=0 produce: the client expects no response.
    Nothing,
    /// The request broke the protocol; close the connection after every
    /// earlier reply is written.
    Close(String),
}
