//! Live status: every state change of an application reaches its subscribers on every replica.
//!
//! On PostgreSQL a change is announced with `pg_notify` inside the transaction that makes it, so
//! it is delivered exactly when (and only if) that transaction commits, to every server listening
//! on the channel — this one included. On SQLite (one process) it is delivered locally after the
//! commit.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::error::AppResult;

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

    /// Inside the changing transaction.
    pub async fn announce(
        &self,
        txn: &DatabaseTransaction,
        change: &StatusChange,
    ) -> AppResult<()> {
        if self.via_postgres {
            let payload = serde_json::to_string(change)
                .map_err(|e| crate::error::AppError::internal("status payload", e))?;
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [CHANNEL.into(), payload.into()],
            ))
            .await?;
        }
        Ok(())
    }

    /// After the commit of a transaction that announced `change`.
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
