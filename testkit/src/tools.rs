//! The tools of `dev/` tests run: the project's Python (with the providers' libraries,
//! Playwright and schemathesis), the Node.js packages, and Debian's chromium. Each is
//! installed once by its script; without them (and no way to install them) the tests
//! that call these fail, never skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub(crate) fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives one level below the repository root")
}

/// Runs `bash dev/<script>` (which installs what is missing) and returns the last
/// line it printed: a path.
fn dev_script_path(script: &str) -> String {
    let output = Command::new("bash")
        .arg(format!("dev/{script}"))
        .current_dir(repo_root())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|err| panic!("cannot run `bash dev/{script}`: {err}"));
    assert!(
        output.status.success(),
        "`bash dev/{script}` failed ({}): the tests that call it need it",
        output.status
    );
    String::from_utf8(output.stdout)
        .unwrap_or_else(|_| panic!("dev/{script} printed a non-UTF-8 path"))
        .lines()
        .last()
        .unwrap_or_else(|| panic!("dev/{script} printed no path"))
        .trim()
        .to_owned()
}

/// The python of `dev/pyenv.sh` (the providers' libraries, PyYAML, Playwright,
/// schemathesis): `HOOKLINE_PYTHON`, else that venv (built once).
pub fn python() -> &'static str {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON.get_or_init(|| {
        std::env::var("HOOKLINE_PYTHON")
            .ok()
            .filter(|path| !path.is_empty())
            .unwrap_or_else(|| dev_script_path("pyenv.sh"))
    })
}

/// The `node_modules` directory of `dev/npmenv.sh` (installed once).
pub fn node_modules() -> &'static Path {
    static NODE_MODULES: OnceLock<PathBuf> = OnceLock::new();
    NODE_MODULES.get_or_init(|| PathBuf::from(dev_script_path("npmenv.sh")))
}

/// Debian's chromium, for Playwright (`dev/chromium.sh`, installed once).
pub fn chromium() -> &'static str {
    static CHROMIUM: OnceLock<String> = OnceLock::new();
    CHROMIUM.get_or_init(|| dev_script_path("chromium.sh"))
}
