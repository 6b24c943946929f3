//! The short form of `make chaos` for `make test`: consumers and handlers SIGKILLed
//! during steady traffic lose no acknowledged event and duplicate none; then every log
//! line and /metrics page of the run is scanned for the signing secrets it used and for
//! full signatures.

use std::path::Path;

use hookline_e2e::chaos::{self, Scenario};
use hookline_e2e::leaks;
use hookline_e2e::system::{System, stack_dir};

const NAMESPACE: &str = "hookline-chaos-short";

#[tokio::test]
async fn killed_consumers_and_handlers_lose_nothing_and_logs_hold_no_secret() {
    let system = System::start(NAMESPACE).await;
    let mut rows = Vec::new();
    for scenario in [Scenario::ConsumerKills, Scenario::HandlerKills] {
        rows.push(chaos::run(&system, scenario).await);
    }

    let secrets = system.signing_secrets().await;
    assert!(
        secrets.len() >= 2,
        "the scenarios' Webhooks have signing secrets: {}",
        secrets.len()
    );
    let mut scan = leaks::scan_logs(&system.pods_dir, &secrets);
    let runner_log = stack_dir()
        .join("logs")
        .join(format!("pod-runner-{NAMESPACE}.log"));
    leaks::scan_file(&runner_log, &secrets, &mut scan);
    for (pod, page) in system.metrics_pages() {
        leaks::scan_text(Path::new(&pod), &page, &secrets, &mut scan);
    }
    system.stop();

    for row in &rows {
        eprintln!("{}: {} {row:?}", row.scenario.slug(), row.verdict());
    }
    for row in &rows {
        assert!(
            row.passed(),
            "{}: {} {row:?}",
            row.scenario.slug(),
            row.verdict()
        );
        assert!(row.acknowledged >= 100, "steady traffic: {row:?}");
    }
    // The operator's, two consumers', three handlers', two emitters' and the runner's.
    assert!(
        scan.files >= 5 && scan.lines > 100,
        "the scan read the logs: {} files, {} lines",
        scan.files,
        scan.lines
    );
    assert!(scan.leaks.is_empty(), "leaks: {:#?}", scan.leaks);
}
