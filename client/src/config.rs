//! Options shared by the producer, consumer and admin client.

use std::time::Duration;

use crate::limits;

/// How to reach the cluster and how patient to be with it.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` of one or more brokers; any one answering is enough.
    pub bootstrap: Vec<String>,
    /// Sent in every request header (the broker logs it).
    pub client_id: String,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Requests in flight per broker connection.
    pub in_flight_per_connection: usize,
    /// Wait between retries of retriable errors.
    pub retry_backoff: Duration,
    /// Metadata older than this is refreshed before routing.
    pub metadata_max_age: Duration,
}

impl ClientConfig {
    /// A config for the comma-separated `bootstrap` list
    /// (`"10.0.0.1:9092,10.0.0.2:9092"`), with Kafka's defaults.
    pub fn new(bootstrap: &str) -> Self {
        Self {
            bootstrap: bootstrap
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            client_id: "sluice-client".to_owned(),
            request_timeout: limits::REQUEST_TIMEOUT_DEFAULT,
            connect_timeout: limits::CONNECT_TIMEOUT_DEFAULT,
            in_flight_per_connection: limits::IN_FLIGHT_PER_CONNECTION_DEFAULT,
            retry_backoff: limits::RETRY_BACKOFF_DEFAULT,
            metadata_max_age: limits::METADATA_MAX_AGE,
        }
    }

    pub fn with_client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = id.into();
        self
    }

    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}
