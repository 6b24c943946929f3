//! crds/webhook.yaml is exactly what the code generates.

#[test]
fn committed_crd_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/webhook.yaml");
    let committed = std::fs::read_to_string(path).expect("crds/webhook.yaml exists");
    assert!(
        committed == hookline_operator::crd::crd_yaml(),
        "crds/webhook.yaml is stale: run `make crds` and commit the result"
    );
}
