//! Partition log storage (being written; see issue 2).
