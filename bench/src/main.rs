//! `sluice-bench`: throughput and latency benchmark for any Kafka-protocol broker.
//!
//! # Caveats
//! Not written yet: tracked by issue 6. Running it says so and exits non-zero.

fn main() -> std::process::ExitCode {
    eprintln!("sluice-bench is not implemented yet (issue 6)");
    std::process::ExitCode::FAILURE
}
