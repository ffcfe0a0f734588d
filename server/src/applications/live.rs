//! Live status: every state change of an application reaches its subscribers on every replica.
//!
//! On PostgreSQL the database announces each change itself: a trigger on `applications` calls
//! `pg_notify` (migration `m20261123_000003`), which is delivered when — and only if — the
//! changing transaction commits, to every server listening on [`CHANNEL`], this one included.
//! On SQLite (one process) the change is delivered locally after the commit.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use uuid::Uuid;

/// The PostgreSQL channel.
pub const CHANNEL: &str = "amtsplatz_application_status";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    pub tenant_id: Uuid,
    pub application_id: Uuid,
    pub reference: String,
    pub state: String,
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct StatusHub {
    tx: broadcast::Sender<StatusChange>,
    via_postgres: bool,
}

impl StatusHub {
    pub fn new(via_postgres: bool) -> Self {
        let (tx, _) = broadcast::channel(1024);
        Self { tx, via_postgres }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<StatusChange> {
        self.tx.subscribe()
    }

    /// After the commit of a transaction that made `change` (PostgreSQL: already announced by
    /// the database).
    pub fn committed(&self, change: StatusChange) {
        if !self.via_postgres {
            self.deliver(change);
        }
    }

    fn deliver(&self, change: StatusChange) {
        // No subscribers is not an error.
        let _ = self.tx.send(change);
    }
}

/// Listens on [`CHANNEL`] with its own connection and feeds the hub; reconnects with backoff.
/// Runs until `stop` fires.
pub async fn listen(hub: StatusHub, url: String, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let session = async {
            let (client, mut connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            // The connection makes progress only while polled: LISTEN runs beside the stream.
            let sql = format!("LISTEN {CHANNEL}");
            let listen = client.batch_execute(&sql);
            tokio::pin!(listen);
            let mut listening = false;
            loop {
                tokio::select! {
                    r = &mut listen, if !listening => {
                        r.map_err(|e| e.to_string())?;
                        listening = true;
                        tracing::debug!("listening for application status changes");
                    }
                    msg = messages.next() => match msg {
                        Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                            match serde_json::from_str::<StatusChange>(n.payload()) {
                                Ok(change) => hub.deliver(change),
                                Err(e) => tracing::warn!(error = %e, "unreadable status notification"),
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return Err::<(), String>(e.to_string()),
                        None => return Err("connection closed".to_owned()),
                    }
                }
            }
        };
        tokio::select! {
            _ = stop.changed() => return,
            r = session => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "status listener lost its connection");
                }
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}
