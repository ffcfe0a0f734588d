//! The virus scan hook: a configured command (e.g. ClamAV's `clamdscan --no-summary -`) reads
//! the file on its standard input while the server hashes it, and answers by exit code:
//! 0 clean, 1 infected, anything else (or not finishing in time) a failure to decide.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;
use tokio::process::{Child, ChildStdin, Command};

use crate::error::AppResult;
use crate::settings::StorageSettings;

/// How long a scanner may take after the last byte.
const SCAN_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanOutcome {
    /// No scanner is configured.
    Skipped,
    Clean,
    Infected,
    /// The scanner did not run or could not decide.
    Failed,
}

/// A running scanner being fed a file.
pub struct Scanner {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
}

/// Starts the configured scanner, if any. A scanner that cannot start gives `Failed` later
/// (the file then waits for a rescan), never an error to the citizen.
pub fn start(cfg: &StorageSettings) -> AppResult<Option<Scanner>> {
    let Some(cmd) = cfg.scan_command.as_ref().filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let spawned = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    Ok(Some(match spawned {
        Ok(mut child) => Scanner {
            stdin: child.stdin.take(),
            child: Some(child),
        },
        Err(e) => {
            tracing::warn!(error = %e, program = %cmd[0], "the virus scanner did not start");
            Scanner {
                child: None,
                stdin: None,
            }
        }
    }))
}

impl Scanner {
    pub async fn feed(&mut self, chunk: &[u8]) {
        if let Some(stdin) = self.stdin.as_mut()
            && stdin.write_all(chunk).await.is_err()
        {
            // The scanner stopped reading (it may have decided already): its exit code tells.
            self.stdin = None;
        }
    }

    pub async fn verdict(mut self) -> ScanOutcome {
        drop(self.stdin.take());
        let Some(mut child) = self.child.take() else {
            return ScanOutcome::Failed;
        };
        match tokio::time::timeout(SCAN_TIMEOUT, child.wait()).await {
            Ok(Ok(status)) => match status.code() {
                Some(0) => ScanOutcome::Clean,
                Some(1) => ScanOutcome::Infected,
                other => {
                    tracing::warn!(exit = ?other, "the virus scanner failed");
                    ScanOutcome::Failed
                }
            },
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the virus scanner failed");
                ScanOutcome::Failed
            }
            Err(_) => {
                tracing::warn!("the virus scanner timed out");
                ScanOutcome::Failed
            }
        }
    }
}
