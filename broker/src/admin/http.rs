//! The admin endpoint's HTTP server (axum over one tokio listener).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use super::AdminState;
use super::collector::BrokerCollector;

/// The content type of the Prometheus text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

struct Shared {
    state: Arc<AdminState>,
    /// Held for the length of one scrape (see the module doc).
    registry: Mutex<Registry>,
}

/// Binds `addr`; the server runs until `shutdown` resolves. Returns the
/// bound address (port 0 picks one).
pub async fn start(
    addr: SocketAddr,
    state: Arc<AdminState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(BrokerCollector {
        state: Arc::clone(&state),
    }));
    let shared = Arc::new(Shared {
        state,
        registry: Mutex::new(registry),
    });
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(shared);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "admin endpoint stopped");
        }
    });
    Ok((bound, task))
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    // The scrape reads /proc and takes each partition's lock briefly: off
    // the async workers.
    let encoded = tokio::task::spawn_blocking(move || {
        let registry = shared
            .registry
            .lock()
            .map_err(|_| "a scrape panicked".to_string())?;
        let mut body = String::with_capacity(64 * 1024);
        prometheus_client::encoding::text::encode(&mut body, &registry)
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(to_text_format(&body))
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    match encoded {
        Ok(body) => (StatusCode::OK, [(header::CONTENT_TYPE, TEXT_FORMAT)], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "metrics do not encode");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Rewrites `prometheus-client`'s OpenMetrics output into the Prometheus
/// text format 0.0.4, which every scraper and `promtool check metrics`
/// read: a counter family's HELP and TYPE name its samples (`x_total`,
/// where OpenMetrics names the family `x`), the infinite bucket is
/// `+Inf`, and there is no `# EOF` line.
pub fn to_text_format(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len() + 1024);
    let mut lines = openmetrics.lines().peekable();
    while let Some(line) = lines.next() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            let is_counter = lines
                .peek()
                .is_some_and(|next| *next == format!("# TYPE {name} counter"));
            if is_counter {
                let help = rest.get(name.len()..).unwrap_or_default();
                out.push_str(&format!(
                    "# HELP {name}_total{help}\n# TYPE {name}_total counter\n"
                ));
                lines.next();
                continue;
            }
        }
        out.push_str(&line.replace("le=\"inf\"", "le=\"+Inf\""));
        out.push('\n');
    }
    out
}

async fn health() -> &'static str {
    "ok\n"
}

async fn ready(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let (ready, state) = shared.state.ready();
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, format!("{state}\n"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn counters_are_named_by_their_samples_and_inf_is_spelled_as_prometheus_does() {
        let open = "# HELP a Things.\n# TYPE a counter\na_total 3\n\
                    # HELP h Time.\n# TYPE h histogram\nh_bucket{le=\"inf\"} 1\n# EOF\n";
        assert_eq!(
            super::to_text_format(open),
            "# HELP a_total Things.\n# TYPE a_total counter\na_total 3\n\
             # HELP h Time.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\n"
        );
    }
}
