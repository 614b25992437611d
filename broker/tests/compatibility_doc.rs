//! `docs/compatibility.md` must list exactly the API table the broker uses.

#[test]
fn compatibility_doc_matches_the_api_table() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/compatibility.md"
    ))
    .expect("docs/compatibility.md exists");
    let table = sluice_protocol::api::compatibility_table_markdown();
    assert!(
        doc.contains(&table),
        "docs/compatibility.md is out of date; its table must read:\n{table}"
    );
}
