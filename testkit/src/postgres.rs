//! A private PostgreSQL cluster for fault tests that stop and start the database.
//!
//! The stack's PostgreSQL is shared by every test of every crate, so a test that needs
//! an outage gets a cluster of its own: `initdb` in a temporary directory, a free
//! loopback port, the stack's server binaries (`PG_BIN`). Running as root, the server
//! runs as the `postgres` user, since PostgreSQL refuses root. Dropping the value stops
//! the cluster and removes its directory.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::http::free_port;
use crate::{stack, unique_name};

pub struct PrivatePostgres {
    bin: PathBuf,
    root: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    /// Creates and starts a cluster; panics, naming the step, when it cannot.
    pub fn start() -> Self {
        let bin = PathBuf::from(
            stack()
                .vars
                .get("PG_BIN")
                .expect(".stack/env has no PG_BIN; re-run `make stack-up`"),
        );
        let root = std::env::temp_dir().join(unique_name("hookline-pg"));
        std::fs::create_dir_all(root.join("data")).expect("create the cluster directory");
        let port = free_port();
        let cluster = Self { bin, root, port };
        if running_as_root() {
            let owner = |flag: &str| -> u32 {
                let out = Command::new("id")
                    .args([flag, "postgres"])
                    .output()
                    .expect("run id");
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse()
                    .expect("the postgres user exists (it comes with postgresql-common)")
            };
            let (uid, gid) = (owner("-u"), owner("-g"));
            for dir in [cluster.root.as_path(), &cluster.data_dir()] {
                std::os::unix::fs::chown(dir, Some(uid), Some(gid)).expect("chown to postgres");
            }
        }
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data_dir().to_string_lossy(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
            ],
        );
        // Durability settings off: the cluster lives for one test.
        let settings = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n",
            cluster.root.display()
        );
        let conf = cluster.data_dir().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("read postgresql.conf");
        text.push_str(&settings);
        std::fs::write(&conf, text).expect("write postgresql.conf");
        cluster.start_again();
        cluster
    }

    /// A URL for the `postgres` database as the superuser (trust on loopback).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Fast shutdown: open connections are cut, as in an outage.
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &[
                "stop",
                "-D",
                &self.data_dir().to_string_lossy(),
                "-m",
                "fast",
                "-w",
                "-t",
                "30",
            ],
        );
    }

    /// Starts the (stopped) cluster again on the same port and waits until it accepts
    /// connections.
    pub fn start_again(&self) {
        let log = self.root.join("postgres.log");
        self.run(
            "pg_ctl",
            &[
                "start",
                "-D",
                &self.data_dir().to_string_lossy(),
                "-l",
                &log.to_string_lossy(),
                "-w",
                "-t",
                "30",
            ],
        );
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        };
        command.current_dir(Path::new("/"));
        command
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self
            .command(program)
            .args(args)
            .output()
            .unwrap_or_else(|err| panic!("cannot run {program}: {err}"));
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args([
                "stop",
                "-D",
                &self.data_dir().to_string_lossy(),
                "-m",
                "immediate",
                "-w",
            ])
            .output();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
