//! crds/webhook.yaml and the chart's copy are exactly what the code generates.

#[test]
fn committed_crds_match_the_code() {
    let generated = hookline_api::webhook::crd_yaml();
    for path in ["crds/webhook.yaml", "helm/hookline/crds/webhook.yaml"] {
        let full = format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"));
        let committed =
            std::fs::read_to_string(&full).unwrap_or_else(|err| panic!("{path}: {err}"));
        assert!(
            committed == generated,
            "{path} is stale: run `make crds` and commit the result"
        );
    }
}
