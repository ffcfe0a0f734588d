//! Live status: every state change of an application reaches its subscribers on every replica.
//!
//! On PostgreSQL the database announces each change itself: a trigger on `applications` calls
//! `pg_notify` (migration `m20261123_000003`), which is delivered when — and only if — the
//! changing transaction commits, to every server listening on [`CHANNEL`], this one included.
//! On SQLite (one process) the change is delivered locally after the commit.
//!
//! Notifications sent while the listener is reconnecting are lost; so once it listens again,
//! every subscriber re-reads its application and gets the status it missed ([`follow`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use sea_orm::sqlx::postgres::PgListener;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::db::Db;
use crate::ids::{ApplicationId, TenantId};

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

/// What the hub broadcasts.
#[derive(Clone, Debug)]
pub enum Event {
    Changed(StatusChange),
    /// Changes may have been missed (the listener was reconnecting): subscribers re-read.
    Missed,
}

#[derive(Clone, Debug)]
pub struct StatusHub {
    tx: broadcast::Sender<Event>,
    via_postgres: bool,
}

impl StatusHub {
    pub fn new(via_postgres: bool) -> Self {
        let (tx, _) = broadcast::channel(1024);
        Self { tx, via_postgres }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
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
        let _ = self.tx.send(Event::Changed(change));
    }

    fn missed(&self) {
        let _ = self.tx.send(Event::Missed);
    }
}

/// The status of the application `current` is of, for one subscriber: `current` first, then
/// every change. After a gap (the listener reconnected, or this subscriber fell behind the
/// broadcast) the status is read again and sent if it is not the one sent last.
pub fn follow(
    rx: broadcast::Receiver<Event>,
    db: Db,
    tenant: TenantId,
    current: StatusChange,
) -> impl futures_util::Stream<Item = StatusChange> + Send + 'static {
    let first = futures_util::stream::once(std::future::ready(current.clone()));
    let rest = futures_util::stream::unfold((rx, current), move |(mut rx, mut last)| {
        let db = db.clone();
        async move {
            loop {
                let next = match rx.recv().await {
                    Ok(Event::Changed(c))
                        if c.tenant_id == last.tenant_id
                            && c.application_id == last.application_id =>
                    {
                        c
                    }
                    Ok(Event::Changed(_)) => continue,
                    Ok(Event::Missed) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        match reread(&db, tenant, ApplicationId(last.application_id)).await {
                            Ok(c) => c,
                            Err(e) => {
                                tracing::warn!(error = %e, "could not read a missed status");
                                continue;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                };
                if next.state != last.state || next.at != last.at {
                    last = next.clone();
                    return Some((next, (rx, last)));
                }
            }
        }
    });
    first.chain(rest)
}

async fn reread(
    db: &Db,
    tenant: TenantId,
    id: ApplicationId,
) -> crate::error::AppResult<StatusChange> {
    let txn = crate::db::begin_tenant(db, tenant).await?;
    let app = super::access::find(&txn, id).await?;
    txn.commit().await?;
    Ok(StatusChange {
        tenant_id: tenant.0,
        application_id: app.id,
        reference: app.reference,
        state: app.state,
        at: app.updated_at,
    })
}

/// Delays between reconnects: doubling up to a cap, and from the start again once a connection
/// worked (a drop after hours of listening is a first failure, not the seventh).
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(10);

    fn new() -> Self {
        Self { next: Self::FIRST }
    }

    /// The delay before the next attempt.
    fn failed(&mut self) -> Duration {
        let delay = self.next;
        self.next = (delay * 2).min(Self::MAX);
        delay
    }

    fn connected(&mut self) {
        self.next = Self::FIRST;
    }
}

/// Listens on [`CHANNEL`] with its own connection and feeds the hub; reconnects with backoff.
/// Runs until `stop` fires.
/// Session invalidations of other replicas ([`crate::auth::sessions::CHANNEL`]) arrive on the
/// same connection and go to `sessions`.
pub async fn listen(
    hub: StatusHub,
    sessions: std::sync::Arc<crate::auth::sessions::SessionCache>,
    url: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new();
    loop {
        let session = async {
            // sqlx's listener: the same driver, TLS and login methods as every other connection
            // of the server (`sslmode=require` included).
            let mut listener = PgListener::connect(&url).await.map_err(|e| e.to_string())?;
            listener
                .listen_all([CHANNEL, crate::auth::sessions::CHANNEL])
                .await
                .map_err(|e| e.to_string())?;
            backoff.connected();
            // Whatever changed while nobody listened reaches subscribers this way.
            hub.missed();
            sessions.forget_all();
            tracing::debug!("listening for application status changes");
            loop {
                // `try_recv` answers `None` when the connection was lost, where `recv` would
                // reconnect silently: then subscribers must re-read what they missed.
                match listener.try_recv().await.map_err(|e| e.to_string())? {
                    Some(n) if n.channel() == crate::auth::sessions::CHANNEL => {
                        sessions.apply(n.payload());
                    }
                    Some(n) => match serde_json::from_str::<StatusChange>(n.payload()) {
                        Ok(change) => hub.deliver(change),
                        Err(e) => tracing::warn!(error = %e, "unreadable status notification"),
                    },
                    None => return Err::<(), String>("connection closed".to_owned()),
                }
            }
        };
        let result = tokio::select! {
            _ = stop.changed() => return,
            r = session => r,
        };
        let delay = backoff.failed();
        if let Err(e) = result {
            tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "status listener lost its connection");
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reconnect_delay_doubles_up_to_its_cap_and_starts_over_after_a_connection() {
        let mut b = Backoff::new();
        let delays: Vec<u128> = (0..8).map(|_| b.failed().as_millis()).collect();
        assert_eq!(delays, [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]);
        b.connected();
        assert_eq!(b.failed(), Duration::from_millis(200));
        assert_eq!(b.failed(), Duration::from_millis(400));
    }
}
