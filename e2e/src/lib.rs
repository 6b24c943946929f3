//! The whole system on this machine as `make run` starts it (dev/run.sh up), driven
//! through the Kubernetes API, the proxy and PostgreSQL: the harness of the end-to-end
//! tests in `tests/`, the fault scenarios of `make chaos` and the log scan for secrets.

pub mod chaos;
pub mod kind;
pub mod leaks;
pub mod system;
