//! Connection quotas (Kafka's `ConnectionQuotas`): how many client
//! connections are open, in all and per address, and how many were refused.
//!
//! The accept loop asks for a [`ConnectionSlot`] for every accepted socket;
//! the slot gives its place back when the connection ends (drop). A socket
//! that gets no slot is closed at once: the client sees a clean close (FIN)
//! and retries or fails over, instead of waiting in the kernel's accept
//! queue with no answer.
//!
//! # Invariants
//! - `open == Σ per_ip` and `per_ip` holds no zero counts, so the map has
//!   at most `max.connections` entries.
//! - A slot is released exactly once (its `Drop`).
//!
//! # Limits
//! - `max.connections` connections at once (Sluice default 10 000; Kafka's
//!   is unbounded, but every connection costs memory and a file
//!   descriptor).
//! - `max.connections.per.ip` from one address (Kafka's default: 2^31-1).
//!
//! # Caveats
//! - Kafka blocks its acceptor at `max.connections` and closes only the
//!   per-address excess; Sluice closes both, so the kernel accept queue
//!   never holds connections no one will serve.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `max.connections` connections are open.
    MaxConnections { max: usize },
    /// `max.connections.per.ip` connections from this address are open.
    MaxConnectionsPerIp { max: usize },
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MaxConnections { max } => write!(f, "max.connections ({max}) reached"),
            Self::MaxConnectionsPerIp { max } => {
                write!(f, "max.connections.per.ip ({max}) reached")
            }
        }
    }
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Open and refused connection counts of one listener.
#[derive(Debug)]
pub struct ConnectionQuotas {
    max_connections: usize,
    max_connections_per_ip: usize,
    open: Mutex<Open>,
    refused_max_connections: AtomicU64,
    refused_max_connections_per_ip: AtomicU64,
}

/// Counters of refused connections since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RefusedCounts {
    pub max_connections: u64,
    pub max_connections_per_ip: u64,
}

impl RefusedCounts {
    pub fn total(&self) -> u64 {
        self.max_connections + self.max_connections_per_ip
    }
}

/// One open connection's place in the quotas; released on drop.
#[derive(Debug)]
pub struct ConnectionSlot {
    quotas: Arc<ConnectionQuotas>,
    ip: IpAddr,
}

impl ConnectionQuotas {
    /// Limits of at least one connection each (a zero limit would refuse
    /// every client, which no setting means).
    pub fn new(max_connections: usize, max_connections_per_ip: usize) -> Arc<Self> {
        Arc::new(Self {
            max_connections: max_connections.max(1),
            max_connections_per_ip: max_connections_per_ip.max(1),
            open: Mutex::new(Open::default()),
            refused_max_connections: AtomicU64::new(0),
            refused_max_connections_per_ip: AtomicU64::new(0),
        })
    }

    /// A slot for a connection from `ip`, or why there is none (counted).
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, Refused> {
        let mut open = self.lock();
        if open.total >= self.max_connections {
            self.refused_max_connections.fetch_add(1, Ordering::Relaxed);
            return Err(Refused::MaxConnections {
                max: self.max_connections,
            });
        }
        let from_ip = open.per_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.max_connections_per_ip {
            self.refused_max_connections_per_ip
                .fetch_add(1, Ordering::Relaxed);
            return Err(Refused::MaxConnectionsPerIp {
                max: self.max_connections_per_ip,
            });
        }
        open.total += 1;
        open.per_ip.insert(ip, from_ip + 1);
        Ok(ConnectionSlot {
            quotas: Arc::clone(self),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().total
    }

    pub fn refused(&self) -> RefusedCounts {
        RefusedCounts {
            max_connections: self.refused_max_connections.load(Ordering::Relaxed),
            max_connections_per_ip: self.refused_max_connections_per_ip.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        // The counts stay consistent under a panic elsewhere: every update
        // is a pair of plain stores made before the guard drops.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn release(&self, ip: IpAddr) {
        let mut open = self.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.per_ip.remove(&ip);
            }
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.quotas.release(self.ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn per_ip_and_total_limits_refuse_and_count() {
        let q = ConnectionQuotas::new(3, 2);
        let a1 = q.try_acquire(A).unwrap();
        let _a2 = q.try_acquire(A).unwrap();
        assert_eq!(
            q.try_acquire(A).unwrap_err(),
            Refused::MaxConnectionsPerIp { max: 2 }
        );
        let _b1 = q.try_acquire(B).unwrap();
        assert_eq!(
            q.try_acquire(B).unwrap_err(),
            Refused::MaxConnections { max: 3 }
        );
        assert_eq!(
            q.refused(),
            RefusedCounts {
                max_connections: 1,
                max_connections_per_ip: 1
            }
        );
        drop(a1);
        assert_eq!(q.open(), 2);
        let _a3 = q.try_acquire(A).unwrap();
        assert_eq!(q.open(), 3);
    }

    #[test]
    fn released_addresses_leave_the_map() {
        let q = ConnectionQuotas::new(10, 10);
        drop(q.try_acquire(A).unwrap());
        drop(q.try_acquire(B).unwrap());
        assert_eq!(q.open(), 0);
        assert!(q.lock().per_ip.is_empty());
    }
}
