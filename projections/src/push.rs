//! The push-configuration read model: each workspace's push webhook URL,
//! folded from `PushConfigured` on the workspace subject (an empty URL
//! removes it). The signing secret is not in the log, so not here either:
//! the gateway keeps it in a JetStream KV bucket.
//!
//! Invariant: one row per workspace with a webhook, holding the URL of the
//! workspace's latest `PushConfigured` event.

use crate::runner::Projector;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use switchboard_core::events::{Body, Envelope};
use switchboard_streams::subjects;

pub struct Push;

impl Projector for Push {
    const NAME: &'static str = "push";
    const TABLES: &'static [(&'static str, &'static str)] = &[("push_config", "workspace_id")];

    fn migrate(conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS push_config (
                 workspace_id TEXT PRIMARY KEY,
                 url TEXT NOT NULL,
                 stream_seq INTEGER NOT NULL
             ) WITHOUT ROWID;",
        )
    }

    fn apply(
        tx: &Transaction<'_>,
        stream_seq: u64,
        subject: &str,
        env: &Envelope,
    ) -> rusqlite::Result<()> {
        let Some(Body::PushConfigured(p)) = &env.body else {
            return Ok(());
        };
        // Only the workspace subject carries push configuration.
        if subject != subjects::workspace(&env.workspace_id) {
            return Ok(());
        }
        if p.url.is_empty() {
            tx.execute(
                "DELETE FROM push_config WHERE workspace_id = ?1",
                params![env.workspace_id],
            )?;
        } else {
            tx.execute(
                "INSERT INTO push_config (workspace_id, url, stream_seq) VALUES (?1, ?2, ?3)
                 ON CONFLICT (workspace_id) DO UPDATE SET url = ?2, stream_seq = ?3",
                params![env.workspace_id, p.url, stream_seq as i64],
            )?;
        }
        Ok(())
    }
}

/// The workspace's push webhook URL, if one is set.
pub fn url_of(conn: &Connection, workspace_id: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT url FROM push_config WHERE workspace_id = ?1")?
        .query_row(params![workspace_id], |r| r.get(0))
        .optional()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use switchboard_core::events::PushConfigured;

    fn configured(url: &str) -> Body {
        Body::PushConfigured(PushConfigured { url: url.into() })
    }

    #[test]
    fn latest_url_wins_and_empty_removes() {
        let (mut m, mut f) = (Model::<Push>::new(), Feed::new());
        m.apply(&[
            f.ws("", "", workspace_created("acme")),
            f.ws("", "admin", configured("https://a.example/h")),
        ]);
        assert_eq!(
            url_of(m.conn(), WS).expect("q").as_deref(),
            Some("https://a.example/h")
        );
        m.apply(&[f.ws("", "admin", configured("https://b.example/h"))]);
        assert_eq!(
            url_of(m.conn(), WS).expect("q").as_deref(),
            Some("https://b.example/h")
        );
        let before = m.checksum();
        m.apply(&[f.ws("", "admin", configured(""))]);
        assert_eq!(url_of(m.conn(), WS).expect("q"), None);
        assert_ne!(m.checksum(), before);
        assert_eq!(url_of(m.conn(), "W2").expect("q"), None);
    }

    #[test]
    fn only_the_workspace_subject_counts() {
        let (mut m, mut f) = (Model::<Push>::new(), Feed::new());
        m.apply(&[f.user("bob", configured("https://evil.example/"))]);
        m.apply(&[f.ch("C1", "bob", configured("https://evil.example/"))]);
        assert_eq!(url_of(m.conn(), WS).expect("q"), None);
    }
}
