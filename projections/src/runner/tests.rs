//! The runner's failure handling, without a server: backoff, the health
//! report, and a writer that survives a panic in the fold.

use super::*;
use crate::testkit::{deleted, posted, Feed};
use switchboard_core::events::Body;

#[test]
fn backoff_doubles_up_to_its_cap_and_resets() {
    let mut b = Backoff::new();
    let delays: Vec<_> = (0..7).map(|_| b.next_delay()).collect();
    assert_eq!(delays[0], FOLD_RETRY_FIRST);
    assert_eq!(delays[1], FOLD_RETRY_FIRST * 2);
    assert!(delays.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(delays[6], FOLD_RETRY_MAX);
    b.reset();
    assert_eq!(b.next_delay(), FOLD_RETRY_FIRST);
}

#[test]
fn health_reports_a_failure_until_the_next_commit() {
    let (reporter, progress) = Reporter::new(7);
    assert_eq!((progress.current(), progress.health()), (7, None));
    reporter.failing("folding stream seq 8 failed".into());
    assert_eq!(
        progress.health().as_deref(),
        Some("folding stream seq 8 failed")
    );
    assert_eq!(progress.current(), 7);
    reporter.committed(9);
    assert_eq!((progress.current(), progress.health()), (9, None));
}

/// Records every folded stream seq; panics on a `MessageDeleted`.
struct Fragile;

impl Projector for Fragile {
    const NAME: &'static str = "fragile";
    const TABLES: &'static [(&'static str, &'static str)] = &[("seen", "seq")];

    fn migrate(conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch("CREATE TABLE IF NOT EXISTS seen (seq INTEGER PRIMARY KEY);")
    }

    fn apply(
        tx: &Transaction<'_>,
        stream_seq: u64,
        _subject: &str,
        env: &Envelope,
    ) -> rusqlite::Result<()> {
        if let Some(Body::MessageDeleted(_)) = env.body {
            panic!("fragile fold");
        }
        tx.execute("INSERT INTO seen (seq) VALUES (?1)", [stream_seq as i64])?;
        Ok(())
    }
}

#[tokio::test]
async fn a_panic_in_the_fold_rolls_back_and_the_writer_reopens() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fragile.db");
    let (conn, _) = open_model::<Fragile>(&path).expect("open");
    let mut writer = Writer::<Fragile>::new(&path, conn);
    let mut f = Feed::new();
    let good = f.ch("C1", "alice", posted("M1", "hi"));
    let bad = f.ch("C1", "alice", deleted("M1"));

    let why = writer
        .fold(vec![good.clone(), bad])
        .await
        .expect_err("the fold panics");
    assert!(why.contains("fragile fold"), "{why}");
    assert!(writer.conn.is_none(), "the connection went with the panic");

    // The next batch reopens the file; nothing of the panicked one stuck.
    assert_eq!(writer.fold(vec![good]).await, Ok(1));
    let conn = writer.conn.as_ref().expect("reopened");
    let seen: i64 = conn
        .query_row("SELECT COUNT(*) FROM seen", [], |r| r.get(0))
        .expect("count");
    assert_eq!(seen, 1);
    assert_eq!(read_checkpoint(conn, Fragile::NAME).expect("checkpoint"), 1);
}

#[tokio::test]
async fn a_rejected_event_is_reported_with_its_seq_and_subject() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("acl.db");
    let (conn, _) = open_model::<crate::acl::Acl>(&path).expect("open");
    let mut writer = Writer::<crate::acl::Acl>::new(&path, conn);
    let mut f = Feed::new();
    let a = f.ws("", "", crate::testkit::user_added("u1", "ann", "t1"));
    let b = f.ws("", "", crate::testkit::user_added("u2", "ann", "t2"));
    assert_eq!(writer.fold(vec![a]).await, Ok(1));
    let why = writer
        .fold(vec![b.clone()])
        .await
        .expect_err("taken handle");
    assert!(why.contains("stream seq 2"), "{why}");
    assert!(why.contains(&b.subject), "{why}");
    assert!(writer.conn.is_some(), "an error keeps the connection");
}
