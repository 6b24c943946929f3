//! End-to-end tests live in `tests/`: they drive the whole system as `make run` starts it
//! (dev/run.sh up) through the Kubernetes API, the proxy and PostgreSQL.
