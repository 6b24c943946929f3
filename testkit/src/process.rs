//! Signalling processes the tests started (or the system under test runs), as a
//! kubelet or an operator would.

use std::process::Command;

/// The signals tests send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: shut down gracefully.
    Term,
    /// SIGKILL: gone at once, nothing flushed.
    Kill,
}

/// Sends `signal` to `pid`; whether it was delivered.
pub fn send_signal(pid: u32, signal: Signal) -> bool {
    let flag = match signal {
        Signal::Term => "-TERM",
        Signal::Kill => "-KILL",
    };
    Command::new("kill")
        .args([flag, &pid.to_string()])
        .status()
        .is_ok_and(|status| status.success())
}
