//! The `sluice` client subcommands against a real broker, through the
//! binary itself (assert_cmd): every subcommand, table and JSON output,
//! and the error paths (unknown topic, broker down, bad arguments).

mod support;

use std::time::Duration;

use assert_cmd::Command;
use support::TestBroker;

/// `sluice` with `--bootstrap` pointing at `broker` (via the env var, so
/// the flag's env fallback is exercised too).
fn sluice(broker: &TestBroker) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.env("SLUICE_BOOTSTRAP", format!("127.0.0.1:{}", broker.port))
        .env("SLUICE_LOG", "warn")
        .timeout(Duration::from_secs(60));
    cmd
}

fn stdout(cmd: &mut Command) -> String {
    let out = cmd.assert().success().get_output().stdout.clone();
    String::from_utf8_lossy(&out).into_owned()
}

fn failure(cmd: &mut Command) -> String {
    let out = cmd.assert().failure().code(1).get_output().stderr.clone();
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn topic_create_list_describe_alter_delete() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path()).unwrap();

    let out = stdout(sluice(&broker).args([
        "topic",
        "create",
        "events",
        "-p",
        "4",
        "-c",
        "retention.ms=86400000",
    ]));
    assert_eq!(out.trim(), "created topic 'events'");

    let err = failure(sluice(&broker).args(["topic", "create", "events"]));
    assert!(
        err.contains("cannot create topic 'events'") && err.contains("TOPIC_ALREADY_EXISTS"),
        "{err}"
    );

    let out = stdout(sluice(&broker).args(["topic", "list"]));
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["events", "4"]),
        "{out}"
    );
    let out = stdout(sluice(&broker).args(["topic", "list", "--output", "json"]));
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "events" && t["partitions"] == 4),
        "{out}"
    );

    let out = stdout(sluice(&broker).args(["topic", "describe", "events"]));
    assert!(
        out.contains("PARTITION") && out.contains("retention.ms") && out.contains("86400000"),
        "{out}"
    );

    stdout(sluice(&broker).args([
        "topic",
        "alter",
        "events",
        "--set",
        "retention.ms=1000",
        "--set",
        "segment.ms=60000",
    ]));
    let out = stdout(sluice(&broker).args(["topic", "describe", "events", "--output", "json"]));
    let d: serde_json::Value = serde_json::from_str(&out).unwrap();
    let config = |name: &str| {
        d["configs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(config("retention.ms")["value"], "1000");
    assert_eq!(config("segment.ms")["value"], "60000");
    assert_eq!(d["partitions"].as_array().unwrap().len(), 4);

    stdout(sluice(&broker).args(["topic", "alter", "events", "--delete", "segment.ms"]));
    let out = stdout(sluice(&broker).args(["topic", "describe", "events", "--output", "json"]));
    let d: serde_json::Value = serde_json::from_str(&out).unwrap();
    let seg = d["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "segment.ms")
        .cloned()
        .unwrap();
    assert_eq!(seg["default"], true, "{seg}");

    let err = failure(sluice(&broker).args(["topic", "alter", "events"]));
    assert!(err.contains("nothing to change"), "{err}");

    let out = stdout(sluice(&broker).args(["topic", "delete", "events"]));
    assert_eq!(out.trim(), "deleted events");
    let err = failure(sluice(&broker).args(["topic", "describe", "events"]));
    assert!(
        err.contains("UNKNOWN_TOPIC_OR_PARTITION") && err.contains("does not exist"),
        "{err}"
    );
    let err = failure(sluice(&broker).args(["topic", "delete", "events"]));
    assert!(err.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{err}");
}

#[test]
fn produce_and_consume_with_keys_headers_partitions_and_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path()).unwrap();
    stdout(sluice(&broker).args(["topic", "create", "lines", "-p", "3"]));

    let out = stdout(
        sluice(&broker)
            .args([
                "produce",
                "lines",
                "--key-separator",
                ":",
                "-H",
                "src=test",
                "-H",
                "n=1",
                "--output",
                "json",
            ])
            .write_stdin("k1:one\nk2:two\nk3:three\nk1:four\n"),
    );
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["records"], 4, "{out}");

    let out = stdout(sluice(&broker).args([
        "consume",
        "lines",
        "--from",
        "beginning",
        "--count",
        "4",
        "--format",
        "{key}={value} p{partition} @{offset} [{headers}]",
    ]));
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 4, "{out}");
    // k1's two records share a partition, in order.
    let k1: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("k1="))
        .collect();
    assert_eq!(k1.len(), 2, "{out}");
    let part = |l: &str| l.split_whitespace().nth(1).unwrap().to_owned();
    assert_eq!(part(k1[0]), part(k1[1]));
    assert!(lines.iter().all(|l| l.ends_with("[src=test,n=1]")), "{out}");

    // --partition, --file, then offset: and timestamp: starts.
    let file = dir.path().join("input.txt");
    std::fs::write(&file, "a\nb\nc\n").unwrap();
    stdout(
        sluice(&broker)
            .args([
                "produce",
                "lines",
                "--partition",
                "2",
                "--compression",
                "zstd",
                "--file",
            ])
            .arg(&file),
    );
    let out = stdout(sluice(&broker).args([
        "consume", "lines", "-p", "2", "--from", "offset:0", "-n", "1", "--output", "json",
    ]));
    let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(first["partition"], 2);
    assert_eq!(first["offset"], 0);

    let end: i64 = {
        let out = stdout(sluice(&broker).args(["topic", "describe", "lines", "--output", "json"]));
        let d: serde_json::Value = serde_json::from_str(&out).unwrap();
        d["partitions"][2]["latest_offset"].as_i64().unwrap()
    };
    let out = stdout(sluice(&broker).args([
        "consume",
        "lines",
        "-p",
        "2",
        "--from",
        &format!("offset:{}", end - 3),
        "-n",
        "3",
    ]));
    assert_eq!(out, "a\nb\nc\n");

    let out = stdout(sluice(&broker).args([
        "consume",
        "lines",
        "-p",
        "2",
        "--from",
        "timestamp:0",
        "-n",
        "1",
        "--format",
        "{offset}",
    ]));
    assert_eq!(out.trim(), "0");
}

#[test]
fn cluster_info_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path()).unwrap();
    let out = stdout(sluice(&broker).args(["cluster", "info"]));
    assert!(
        out.contains("controller") && out.contains(&format!("127.0.0.1:{}", broker.port)),
        "{out}"
    );
    let out = stdout(sluice(&broker).args(["cluster", "info", "--output", "json"]));
    let info: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(info["brokers"].as_array().unwrap().len(), 1);
    assert_eq!(info["brokers"][0]["port"], broker.port);
}

#[test]
fn errors_name_the_problem_and_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path()).unwrap();

    let err = failure(sluice(&broker).args(["consume", "ghost", "-n", "1"]));
    assert!(
        err.contains("'ghost'") && err.contains("UNKNOWN_TOPIC_OR_PARTITION"),
        "{err}"
    );

    // Bad arguments are usage errors (clap's exit code 2).
    let out = sluice(&broker)
        .args(["consume", "t", "--from", "yesterday"])
        .assert()
        .failure()
        .code(2)
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8_lossy(&out).contains("beginning, end, offset:N, timestamp:MS"));

    // Broker down: nothing listens on a port we just released.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for args in [
        vec!["topic", "list"],
        vec!["cluster", "info"],
        vec!["group", "list"],
        vec!["consume", "t", "-n", "1"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(&args)
            .args(["--bootstrap", &format!("127.0.0.1:{port}")])
            .timeout(Duration::from_secs(30))
            .assert()
            .failure()
            .code(1)
            .get_output()
            .stderr
            .clone();
        let err = String::from_utf8_lossy(&out);
        assert!(
            err.contains("no broker reachable") && err.contains(&port.to_string()),
            "{args:?}: {err}"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["produce", "t", "--bootstrap", &format!("127.0.0.1:{port}")])
        .write_stdin("x\n")
        .timeout(Duration::from_secs(30))
        .assert()
        .failure()
        .code(1)
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8_lossy(&out).contains("no broker reachable"));
}

#[test]
fn groups_consume_commit_describe_reset_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path()).unwrap();
    stdout(sluice(&broker).args(["topic", "create", "gt", "-p", "1"]));
    let input: String = (0..10).map(|i| format!("v{i}\n")).collect();
    stdout(sluice(&broker).args(["produce", "gt"]).write_stdin(input));

    // A group member prints four records and commits exactly those.
    let out = stdout(sluice(&broker).args([
        "consume",
        "gt",
        "--group",
        "cg",
        "--from",
        "beginning",
        "-n",
        "4",
    ]));
    assert_eq!(out, "v0\nv1\nv2\nv3\n");

    let out = stdout(sluice(&broker).args(["group", "list"]));
    assert!(out.lines().any(|l| l.starts_with("cg ")), "{out}");
    let out = stdout(sluice(&broker).args(["group", "describe", "cg", "--output", "json"]));
    let d: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["offsets"][0]["committed"], 4, "{out}");
    assert_eq!(d["offsets"][0]["end"], 10, "{out}");
    assert_eq!(d["offsets"][0]["lag"], 6, "{out}");
    assert_eq!(d["members"].as_array().unwrap().len(), 0, "{out}");
    let out = stdout(sluice(&broker).args(["group", "describe", "cg"]));
    assert!(out.contains("LAG") && out.contains("gt"), "{out}");

    // The next member continues where the last one stopped.
    let out = stdout(sluice(&broker).args([
        "consume",
        "gt",
        "--group",
        "cg",
        "-n",
        "3",
        "--format",
        "{offset}:{value}",
    ]));
    assert_eq!(out, "4:v4\n5:v5\n6:v6\n");

    // Reset to the beginning, then to an exact offset.
    let out = stdout(sluice(&broker).args([
        "group",
        "reset-offsets",
        "cg",
        "--topic",
        "gt",
        "--to",
        "beginning",
    ]));
    assert!(out.contains("NEW OFFSET"), "{out}");
    let out = stdout(sluice(&broker).args(["consume", "gt", "--group", "cg", "-n", "1"]));
    assert_eq!(out, "v0\n");
    stdout(sluice(&broker).args([
        "group",
        "reset-offsets",
        "cg",
        "--topic",
        "gt",
        "--to",
        "offset:8",
        "--output",
        "json",
    ]));
    let out = stdout(sluice(&broker).args(["consume", "gt", "--group", "cg", "-n", "2"]));
    assert_eq!(out, "v8\nv9\n");

    let out = stdout(sluice(&broker).args(["group", "delete", "cg"]));
    assert_eq!(out.trim(), "deleted group 'cg'");
    let out = stdout(sluice(&broker).args(["group", "list", "--output", "json"]));
    assert!(!out.contains("\"cg\""), "{out}");
    let err = failure(sluice(&broker).args(["group", "delete", "cg"]));
    assert!(
        err.contains("cannot delete group 'cg'") && err.contains("GROUP_ID_NOT_FOUND"),
        "{err}"
    );

    let err = failure(sluice(&broker).args([
        "group",
        "reset-offsets",
        "cg",
        "--topic",
        "nope",
        "--to",
        "end",
    ]));
    assert!(err.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{err}");
}

#[test]
fn produce_refuses_a_line_larger_than_max_request_size() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path()).unwrap();
    stdout(sluice(&broker).args(["topic", "create", "capped", "-p", "1"]));
    let small = "s".repeat(100);
    let large = "l".repeat(2000);
    let err = failure(
        sluice(&broker)
            .args(["produce", "capped", "--max-request-size", "1024"])
            .write_stdin(format!("{small}\n{large}\n")),
    );
    assert!(
        err.contains("MESSAGE_TOO_LARGE") && err.contains("max_request_size"),
        "{err}"
    );
    // Within the cap, the same command goes through.
    stdout(
        sluice(&broker)
            .args(["produce", "capped", "--max-request-size", "4096"])
            .write_stdin(format!("{small}\n{large}\n")),
    );
}
