//! Following the heads other processes move: a connection of its own that `LISTEN`s on the
//! channel the `heads` trigger notifies (migration 2), turning each notification of the
//! store's schema into a [`HeadNotice`]. When the connection drops, it is opened again after a
//! pause, and [`HeadNotice::Missed`] tells the followers that what happened meanwhile must be
//! read from the heads.

use std::time::Duration;

use tokio::sync::broadcast;
use tokio_postgres::AsyncMessage;

use crate::store::HeadNotice;
use crate::types::{Seq, TenantId};

use super::settings::PostgresSettings;
use super::tls;

/// The channel the `heads` trigger notifies.
const CHANNEL: &str = "idpsync_heads";
/// The pause before a lost listening connection is opened again.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// Listens until the task is aborted, sending what it hears to `notices`.
pub(super) async fn listen(settings: PostgresSettings, notices: broadcast::Sender<HeadNotice>) {
    loop {
        if let Err(reason) = listen_once(&settings, &notices).await {
            tracing::warn!(%reason, "lost the PostgreSQL connection that follows other replicas' appends; reconnecting");
        }
        // Whatever was notified while no connection listened is read from the heads.
        let _ = notices.send(HeadNotice::Missed);
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}

/// One listening connection, until it fails.
async fn listen_once(settings: &PostgresSettings, notices: &broadcast::Sender<HeadNotice>) -> Result<(), String> {
    let tls = tls::connector(settings).map_err(|e| e.to_string())?;
    let (client, mut connection) = settings.config.connect(tls).await.map_err(|e| e.to_string())?;
    let (listening, mut ended) = tokio::sync::oneshot::channel::<String>();
    let schema = settings.schema.clone();
    let forward = notices.clone();
    let driver = tokio::spawn(async move {
        let reason = loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(notification))) => {
                    if let Some(notice) = parse(&schema, notification.payload()) {
                        let _ = forward.send(notice);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => break error.to_string(),
                None => break "the connection closed".to_owned(),
            }
        };
        let _ = listening.send(reason);
    });
    let listened = client.batch_execute(&format!("LISTEN {CHANNEL}")).await;
    if let Err(error) = listened {
        driver.abort();
        return Err(error.to_string());
    }
    // Anything appended before LISTEN took effect is read from the heads.
    let _ = notices.send(HeadNotice::Missed);
    let reason = (&mut ended)
        .await
        .unwrap_or_else(|_| "the connection task ended".to_owned());
    drop(client);
    Err(reason)
}

/// The notice in a payload `schema \t tenant \t seq`, if it is of `schema`.
fn parse(schema: &str, payload: &str) -> Option<HeadNotice> {
    let mut parts = payload.split('\t');
    if parts.next()? != schema {
        return None;
    }
    let tenant = TenantId::new(parts.next()?).ok()?;
    let seq = Seq(parts.next()?.parse().ok()?);
    Some(HeadNotice::Moved { tenant, seq })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_stores_schema_is_heard() {
        assert_eq!(
            parse("idpsync", "idpsync\tacme\t42"),
            Some(HeadNotice::Moved {
                tenant: TenantId::new("acme").unwrap(),
                seq: Seq(42)
            })
        );
        assert_eq!(parse("idpsync", "other\tacme\t42"), None);
        assert_eq!(parse("idpsync", "idpsync\tacme"), None);
        assert_eq!(parse("idpsync", "idpsync\tacme\tx"), None);
    }
}
