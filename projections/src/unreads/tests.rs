//! Given events, expect counts: the unread fold on in-memory SQLite, one
//! test per rule, and the ordinal arithmetic checked against a naive count
//! over a pseudo-random history.

use super::{marker, unpack_fixes, unreads, UnreadSummary, Unreads, CHANNELS_SQL, THREADS_SQL};
use crate::testkit::*;
use switchboard_core::events::ChannelKind;
use switchboard_streams::LogEvent;

const CH: &str = "C1";

/// ada (the reader) and bob are members of C1; cy too.
fn setup() -> (Model<Unreads>, Feed) {
    let (mut m, mut f) = (Model::new(), Feed::new());
    let evs = vec![
        f.ws("", "", workspace_created("acme")),
        f.ws(
            CH,
            "ada",
            channel_created("general", ChannelKind::Channel, &["ada"]),
        ),
        f.ch(CH, "bob", joined("bob")),
        f.ch(CH, "cy", joined("cy")),
    ];
    m.apply(&evs);
    (m, f)
}

fn summary(m: &Model<Unreads>, user: &str, chs: &[&str]) -> UnreadSummary {
    let list: Vec<String> = chs.iter().map(|c| c.to_string()).collect();
    unreads(m.conn(), user, &list).expect("query")
}

/// (unread_count, mention_count) of C1 for `user`.
fn counts(m: &Model<Unreads>, user: &str) -> (u64, u64) {
    let s = summary(m, user, &[CH]);
    let c = &s.channels[0];
    (c.unread_count, c.mention_count)
}

fn thread(m: &Model<Unreads>, user: &str, root: &str) -> Option<(u64, u64)> {
    summary(m, user, &[CH])
        .threads
        .iter()
        .find(|t| t.root_id == root)
        .map(|t| (t.unread_replies, t.mention_count))
}

fn one(m: &mut Model<Unreads>, ev: LogEvent) {
    m.apply(&[ev]);
}

#[test]
fn only_messages_count() {
    let (mut m, mut f) = setup();
    assert_eq!(counts(&m, "ada"), (0, 0));
    one(&mut m, f.ch(CH, "bob", posted("M1", "hi")));
    for ev in [
        f.ch(CH, "bob", reacted("M1", "smile")),
        f.ch(CH, "bob", edited("M1", "hello")),
        f.ch(CH, "bob", topic_set("t")),
        f.ch(CH, "dan", joined("dan")),
        f.ch(CH, "bob", pin("M1")),
    ] {
        one(&mut m, ev);
    }
    assert_eq!(counts(&m, "ada"), (1, 0));
    let s = summary(&m, "ada", &[CH]);
    assert_eq!(s.channels[0].head_seq, 8);
    assert_eq!(s.channels[0].last_read_seq, 0);
    assert_eq!(s.channels[0].latest_ts, 5_000);
}

#[test]
fn own_messages_never_count() {
    let (mut m, mut f) = setup();
    one(&mut m, f.ch(CH, "ada", posted("M1", "mine")));
    one(&mut m, f.ch(CH, "bob", posted("M2", "his")));
    one(&mut m, f.ch(CH, "ada", posted("M3", "mine")));
    assert_eq!(counts(&m, "ada"), (1, 0));
    assert_eq!(counts(&m, "bob"), (2, 0));
    // ada read up to M1 (seq 3): M2 unread, M3 hers.
    one(&mut m, f.user("ada", read_marker(CH, 3)));
    assert_eq!(counts(&m, "ada"), (1, 0));
    one(&mut m, f.user("ada", read_marker(CH, 4)));
    assert_eq!(counts(&m, "ada"), (0, 0));
}

#[test]
fn deleted_messages_stop_counting_at_once() {
    let (mut m, mut f) = setup();
    one(&mut m, f.ch(CH, "bob", posted("M1", "a"))); // seq 3
    one(&mut m, f.ch(CH, "bob", posted("M2", "b @ada"))); // seq 4
    one(&mut m, f.ch(CH, "cy", posted("M3", "c"))); // seq 5
    assert_eq!(counts(&m, "ada"), (3, 0));
    one(&mut m, f.user("ada", read_marker(CH, 3)));
    // Deleting one before the marker changes nothing; after it, one less.
    one(&mut m, f.ch(CH, "bob", deleted("M1")));
    assert_eq!(counts(&m, "ada"), (2, 0));
    one(
        &mut m,
        f.ch(
            CH,
            "bob",
            edited_mentioning("M2", "b @ada", mentions(&["ada"], false, false)),
        ),
    );
    assert_eq!(counts(&m, "ada"), (2, 1));
    one(&mut m, f.ch(CH, "bob", deleted("M2")));
    assert_eq!(counts(&m, "ada"), (1, 0));
    // A second tombstone, or an edit after it, changes nothing.
    one(&mut m, f.ch(CH, "bob", deleted("M2")));
    one(
        &mut m,
        f.ch(
            CH,
            "bob",
            edited_mentioning("M2", "x", mentions(&["ada"], false, false)),
        ),
    );
    assert_eq!(counts(&m, "ada"), (1, 0));
    // cy deletes her own: nothing left; for cy, her deleted one never counted.
    one(&mut m, f.ch(CH, "cy", deleted("M3")));
    assert_eq!(counts(&m, "ada"), (0, 0));
    assert_eq!(counts(&m, "cy"), (0, 0));
}

#[test]
fn thread_replies_count_in_the_thread_unless_also_sent_to_the_channel() {
    let (mut m, mut f) = setup();
    one(&mut m, f.ch(CH, "ada", posted("R", "root"))); // seq 3
    one(&mut m, f.user("ada", read_marker(CH, 3)));
    one(&mut m, f.ch(CH, "bob", reply("T1", "R", "in thread")));
    assert_eq!(counts(&m, "ada"), (0, 0));
    assert_eq!(thread(&m, "ada", "R"), Some((1, 0)));
    one(
        &mut m,
        f.ch(CH, "cy", reply_to_channel("T2", "R", "also here")),
    );
    assert_eq!(counts(&m, "ada"), (1, 0));
    assert_eq!(thread(&m, "ada", "R"), Some((2, 0)));
    // bob replied: he follows; cy too; the replies of each other count.
    assert_eq!(thread(&m, "bob", "R"), Some((1, 0)));
    assert_eq!(thread(&m, "cy", "R"), Some((1, 0)));
    one(&mut m, f.user("ada", thread_marker(CH, "R", 5)));
    assert_eq!(thread(&m, "ada", "R"), Some((0, 0)));
    // A deleted reply stops counting.
    one(&mut m, f.ch(CH, "cy", reply("T3", "R", "x")));
    assert_eq!(thread(&m, "ada", "R"), Some((1, 0)));
    one(&mut m, f.ch(CH, "cy", deleted("T3")));
    assert_eq!(thread(&m, "ada", "R"), Some((0, 0)));
}

#[test]
fn threads_followed_started_replied_or_mentioned() {
    let (mut m, mut f) = setup();
    one(
        &mut m,
        f.ch(
            CH,
            "bob",
            posted_mentioning("R", "root @cy", mentions(&["cy"], false, false)),
        ),
    );
    // No reply yet: nobody follows.
    assert_eq!(thread(&m, "bob", "R"), None);
    one(&mut m, f.ch(CH, "bob", reply("T1", "R", "self reply")));
    assert_eq!(thread(&m, "bob", "R"), Some((0, 0)));
    assert_eq!(thread(&m, "cy", "R"), Some((1, 0)), "mentioned in the root");
    assert_eq!(thread(&m, "ada", "R"), None, "not involved");
    one(
        &mut m,
        f.ch(
            CH,
            "bob",
            reply_mentioning("T2", "R", false, mentions(&["ada"], false, false)),
        ),
    );
    // Mentioned in a reply: ada follows; the replies before it are unread
    // for her too until she reads the thread.
    assert_eq!(thread(&m, "ada", "R"), Some((2, 1)), "mentioned in a reply");
    // @channel in a reply counts as a mention for followers.
    one(
        &mut m,
        f.ch(
            CH,
            "cy",
            reply_mentioning("T3", "R", false, mentions(&[], true, false)),
        ),
    );
    assert_eq!(thread(&m, "ada", "R"), Some((3, 2)));
    assert_eq!(thread(&m, "cy", "R"), Some((2, 0)));
    // The channel's mention count is unaffected by replies not sent to it.
    assert_eq!(counts(&m, "ada").1, 0);
    // A thread is listed only in channels passed in (current membership).
    assert!(summary(&m, "ada", &[]).threads.is_empty());
}

#[test]
fn mentions_by_name_channel_and_here() {
    let (mut m, mut f) = setup();
    one(
        &mut m,
        f.ch(
            CH,
            "bob",
            posted_mentioning("M1", "@ada", mentions(&["ada"], false, false)),
        ),
    );
    assert_eq!(counts(&m, "ada"), (1, 1));
    assert_eq!(counts(&m, "cy"), (1, 0));
    one(
        &mut m,
        f.ch(
            CH,
            "bob",
            posted_mentioning("M2", "@channel", mentions(&[], true, false)),
        ),
    );
    assert_eq!(counts(&m, "ada"), (2, 2));
    assert_eq!(counts(&m, "cy"), (2, 1));
    assert_eq!(counts(&m, "bob"), (0, 0), "own @channel");
    // @here addressed ada (online) but not cy (offline).
    one(
        &mut m,
        f.ch(
            CH,
            "bob",
            posted_mentioning("M3", "@here", here_mentions(&["ada"])),
        ),
    );
    assert_eq!(counts(&m, "ada"), (3, 3));
    assert_eq!(counts(&m, "cy"), (3, 1));
    // Named, @channel and @here in one message: one mention.
    let mut all = mentions(&["ada"], true, true);
    all.here_user_ids = vec!["ada".into()];
    one(
        &mut m,
        f.ch(
            CH,
            "bob",
            posted_mentioning("M4", "@ada @channel @here", all),
        ),
    );
    assert_eq!(counts(&m, "ada"), (4, 4));
    // Read past them: gone.
    one(&mut m, f.user("ada", read_marker(CH, 5)));
    assert_eq!(counts(&m, "ada"), (1, 1));
}

#[test]
fn edits_that_add_or_remove_a_mention_change_the_count() {
    let (mut m, mut f) = setup();
    one(&mut m, f.ch(CH, "bob", posted("M1", "hi")));
    assert_eq!(counts(&m, "ada"), (1, 0));
    one(
        &mut m,
        f.ch(
            CH,
            "bob",
            edited_mentioning("M1", "hi @ada", mentions(&["ada"], false, false)),
        ),
    );
    assert_eq!(counts(&m, "ada"), (1, 1));
    one(
        &mut m,
        f.ch(
            CH,
            "bob",
            edited_mentioning("M1", "hi @cy", mentions(&["cy"], false, false)),
        ),
    );
    assert_eq!(counts(&m, "ada"), (1, 0));
    assert_eq!(counts(&m, "cy"), (1, 1));
    one(
        &mut m,
        f.ch(
            CH,
            "bob",
            edited_mentioning("M1", "hi", mentions(&[], false, false)),
        ),
    );
    assert_eq!(counts(&m, "cy"), (1, 0));
}

#[test]
fn every_message_of_a_dm_is_a_mention() {
    let (mut m, mut f) = setup();
    let dm = "D1";
    one(
        &mut m,
        f.ws(
            dm,
            "ada",
            channel_created(dm, ChannelKind::Direct, &["ada", "bob"]),
        ),
    );
    one(&mut m, f.ch(dm, "bob", posted("M1", "psst")));
    one(&mut m, f.ch(dm, "bob", posted("M2", "psst")));
    one(&mut m, f.ch(dm, "ada", posted("M3", "yes")));
    let s = summary(&m, "ada", &[dm]);
    assert_eq!(
        (s.channels[0].unread_count, s.channels[0].mention_count),
        (2, 2)
    );
    let s = summary(&m, "bob", &[dm]);
    assert_eq!(
        (s.channels[0].unread_count, s.channels[0].mention_count),
        (1, 1)
    );
}

#[test]
fn a_muted_channel_reports_counts_but_no_mentions() {
    let (mut m, mut f) = setup();
    one(
        &mut m,
        f.ch(
            CH,
            "bob",
            posted_mentioning("R", "@ada", mentions(&["ada"], false, false)),
        ),
    );
    one(
        &mut m,
        f.ch(
            CH,
            "bob",
            reply_mentioning("T", "R", false, mentions(&["ada"], false, false)),
        ),
    );
    one(&mut m, f.user("ada", muted(CH, true)));
    assert_eq!(counts(&m, "ada"), (1, 0));
    assert_eq!(thread(&m, "ada", "R"), Some((1, 0)));
    assert_eq!(counts(&m, "cy"), (1, 0));
    one(&mut m, f.user("ada", muted(CH, false)));
    assert_eq!(counts(&m, "ada"), (1, 1));
    assert_eq!(thread(&m, "ada", "R"), Some((1, 1)));
    // A muted DM: counts, no mentions.
    one(
        &mut m,
        f.ws(
            "D1",
            "ada",
            channel_created("D1", ChannelKind::Direct, &["ada", "bob"]),
        ),
    );
    one(&mut m, f.ch("D1", "bob", posted("M1", "psst")));
    one(&mut m, f.user("ada", muted("D1", true)));
    let s = summary(&m, "ada", &["D1"]);
    assert_eq!(
        (s.channels[0].unread_count, s.channels[0].mention_count),
        (1, 0)
    );
}

#[test]
fn markers_never_move_back_except_by_mark_unread() {
    let (mut m, mut f) = setup();
    for i in 0..4 {
        one(&mut m, f.ch(CH, "bob", posted(&format!("M{i}"), "x"))); // seqs 3..=6
    }
    one(&mut m, f.user("ada", read_marker(CH, 6)));
    one(&mut m, f.user("ada", read_marker(CH, 4)));
    assert_eq!(marker(m.conn(), "ada", CH, "").expect("q"), 6);
    assert_eq!(counts(&m, "ada"), (0, 0));
    one(&mut m, f.user("ada", marker_back(CH, 4)));
    assert_eq!(marker(m.conn(), "ada", CH, "").expect("q"), 4);
    assert_eq!(counts(&m, "ada"), (2, 0));
}

#[test]
fn a_join_marks_what_came_before_as_read() {
    let (mut m, mut f) = setup();
    one(&mut m, f.ch(CH, "bob", posted("M1", "before dan")));
    one(&mut m, f.ch(CH, "dan", joined("dan"))); // seq 4
    one(&mut m, f.ch(CH, "bob", posted("M2", "after dan")));
    let s = summary(&m, "dan", &[CH]);
    assert_eq!(
        (s.channels[0].last_read_seq, s.channels[0].unread_count),
        (4, 1)
    );
    // Channels not passed in (not a member now) are not listed.
    assert!(summary(&m, "dan", &[]).channels.is_empty());
}

#[test]
fn replay_gives_the_same_rows() {
    let (mut a, mut f) = (Model::<Unreads>::new(), Feed::new());
    let mut evs = vec![
        f.ws("", "", workspace_created("acme")),
        f.ws(
            CH,
            "ada",
            channel_created("general", ChannelKind::Channel, &["ada"]),
        ),
        f.ch(CH, "bob", joined("bob")),
        f.ch(
            CH,
            "bob",
            posted_mentioning("R", "@ada", mentions(&["ada"], true, false)),
        ),
        f.ch(CH, "ada", reply_to_channel("T", "R", "x")),
        f.user("ada", read_marker(CH, 4)),
        f.ch(CH, "bob", deleted("R")),
    ];
    evs.push(f.user("ada", muted(CH, true)));
    a.apply(&evs);
    let mut b = Model::<Unreads>::new();
    for e in &evs {
        b.apply(std::slice::from_ref(e));
    }
    assert_eq!(a.checksum(), b.checksum());
}

/// A message of the naive model in `counts_agree_with_a_naive_count`.
struct Naive {
    seq: u64,
    id: String,
    sender: &'static str,
    channel_level: bool,
    deleted: bool,
    /// Named users, @channel, @here and the users it addressed.
    named: Vec<&'static str>,
    channel: bool,
    here: bool,
    here_users: Vec<&'static str>,
}

impl Naive {
    fn mentions(&self, user: &str) -> bool {
        self.channel || self.named.contains(&user) || (self.here && self.here_users.contains(&user))
    }

    fn event(&self) -> switchboard_core::events::Mentions {
        let mut m = mentions(&self.named, self.channel, self.here);
        m.here_user_ids = self.here_users.iter().map(|u| u.to_string()).collect();
        m
    }
}

/// The ordinal arithmetic (message and mention ordinals, and their fixes)
/// against a naive count, over a pseudo-random history of posts and
/// replies (some also sent) by three users mentioning any of them by
/// name, `@here` (addressing some) and `@channel` (several at once, the
/// sender too), edits that add and remove mentions (of old messages and
/// of new ones, again and again), deletes, marker moves forward and back
/// (mark unread).
#[test]
fn counts_agree_with_a_naive_count() {
    let (mut m, mut f) = setup();
    let users = ["ada", "bob", "cy"];
    let mut msgs: Vec<Naive> = Vec::new();
    // ada created C1 (no marker); bob joined at seq 1, cy at seq 2.
    let mut markers = [0u64, 1, 2];
    let mut seq = 2u64;
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // Mentions from random bits: each user named with p 1/4, @channel
    // 1/8, @here 1/6 addressing each user with p 1/2.
    let pick = |r: u64| -> (Vec<&'static str>, bool, bool, Vec<&'static str>) {
        let named = (0..3)
            .filter(|i| (r >> (2 * i)).is_multiple_of(4))
            .map(|i| users[i])
            .collect();
        let here = (r >> 9).is_multiple_of(6);
        let here_users = if here {
            (0..3)
                .filter(|i| (r >> (12 + i)).is_multiple_of(2))
                .map(|i| users[i])
                .collect()
        } else {
            Vec::new()
        };
        (named, (r >> 6).is_multiple_of(8), here, here_users)
    };
    for step in 0..1_500 {
        let r = next();
        let who = users[(r % 3) as usize];
        let bits = next();
        match (r >> 8) % 12 {
            0..=4 => {
                seq += 1;
                let id = format!("M{step}");
                let (named, channel, here, here_users) = if bits % 3 == 0 {
                    pick(bits >> 2)
                } else {
                    (Vec::new(), false, false, Vec::new())
                };
                let n = Naive {
                    seq,
                    id: id.clone(),
                    sender: who,
                    channel_level: true,
                    deleted: false,
                    named,
                    channel,
                    here,
                    here_users,
                };
                one(
                    &mut m,
                    f.ch(CH, who, posted_mentioning(&id, "x", n.event())),
                );
                msgs.push(n);
            }
            5 | 6 => {
                let roots: Vec<String> = msgs
                    .iter()
                    .filter(|m| m.channel_level && !m.deleted && !m.id.starts_with('T'))
                    .map(|m| m.id.clone())
                    .collect();
                if roots.is_empty() {
                    continue;
                }
                let root = &roots[(r >> 20) as usize % roots.len()];
                let also = (r >> 30) % 2 == 0;
                seq += 1;
                let id = format!("T{step}");
                let (named, channel, here, here_users) = if bits % 4 == 0 {
                    pick(bits >> 2)
                } else {
                    (Vec::new(), false, false, Vec::new())
                };
                let n = Naive {
                    seq,
                    id: id.clone(),
                    sender: who,
                    channel_level: also,
                    deleted: false,
                    named,
                    channel,
                    here,
                    here_users,
                };
                one(
                    &mut m,
                    f.ch(CH, who, reply_mentioning(&id, root, also, n.event())),
                );
                msgs.push(n);
            }
            7 => {
                let live: Vec<usize> = (0..msgs.len()).filter(|&i| !msgs[i].deleted).collect();
                if live.is_empty() {
                    continue;
                }
                let i = live[(r >> 20) as usize % live.len()];
                seq += 1;
                let id = msgs[i].id.clone();
                one(&mut m, f.ch(CH, msgs[i].sender, deleted(&id)));
                msgs[i].deleted = true;
            }
            8 | 9 => {
                // An edit re-resolves the mentions: of a recent message
                // or any older one, possibly a deleted one (no effect).
                if msgs.is_empty() {
                    continue;
                }
                let i = if (r >> 18) % 2 == 0 {
                    msgs.len() - 1 - (r >> 20) as usize % msgs.len().min(3)
                } else {
                    (r >> 20) as usize % msgs.len()
                };
                seq += 1;
                let (named, channel, here, here_users) = pick(bits);
                let id = msgs[i].id.clone();
                let sender = msgs[i].sender;
                if !msgs[i].deleted {
                    let n = &mut msgs[i];
                    (n.named, n.channel, n.here, n.here_users) =
                        (named.clone(), channel, here, here_users.clone());
                }
                let mut e = mentions(&named, channel, here);
                e.here_user_ids = here_users.iter().map(|u| u.to_string()).collect();
                one(&mut m, f.ch(CH, sender, edited_mentioning(&id, "x", e)));
            }
            10 if (r >> 12) % 4 == 0 => {
                // Mark unread from a random point (the only way back).
                let u = (r % 3) as usize;
                let to = (r >> 24) % (seq + 1);
                one(&mut m, f.user(users[u], marker_back(CH, to)));
                markers[u] = to;
            }
            _ => {
                let u = (r % 3) as usize;
                let to = (r >> 24) % (seq + 1);
                one(&mut m, f.user(users[u], read_marker(CH, to)));
                markers[u] = markers[u].max(to);
            }
        }
        for (u, user) in users.iter().enumerate() {
            let after = |m: &&Naive| {
                m.seq > markers[u] && m.channel_level && !m.deleted && m.sender != *user
            };
            let unread = msgs.iter().filter(after).count() as u64;
            let mentioned = msgs
                .iter()
                .filter(after)
                .filter(|m| m.mentions(user))
                .count() as u64;
            assert_eq!(
                counts(&m, user),
                (unread, mentioned),
                "step {step}, user {user}"
            );
        }
    }
}

#[test]
fn a_file_of_an_older_schema_is_refolded_from_the_start() {
    let (mut m, mut f) = setup();
    one(&mut m, f.ch(CH, "bob", posted("M1", "hi")));
    assert_eq!(counts(&m, "ada"), (1, 0));
    let cp = m.checkpoint();
    assert!(cp > 0);
    m.conn()
        .execute_batch("PRAGMA user_version = 0")
        .expect("pragma");
    crate::runner::migrate_model::<Unreads>(m.conn()).expect("migrate");
    assert_eq!(m.checkpoint(), 0, "the log is folded again");
    assert_eq!(m.int("SELECT COUNT(*) FROM msgs", []), 0);
    assert_eq!(m.int("PRAGMA user_version", []), super::SCHEMA_VERSION);
    // Opening a current file changes nothing.
    one(&mut m, f.ch(CH, "bob", posted("M2", "again")));
    crate::runner::migrate_model::<Unreads>(m.conn()).expect("migrate");
    assert_eq!(m.int("SELECT COUNT(*) FROM msgs", []), 1);
}

/// Every table the two statements of `unreads` read is reached by a
/// seek on a key or index (`SEARCH`), never a `SCAN`: only the JSON list
/// of channels and the materialized per-channel rows are walked.
#[test]
fn the_unreads_statements_only_seek() {
    let (m, _) = setup();
    for sql in [CHANNELS_SQL, THREADS_SQL] {
        let mut stmt = m
            .conn()
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("explain");
        let plan: Vec<String> = stmt
            .query_map(rusqlite::params!["[\"C1\"]", "ada"], |r| r.get(3))
            .expect("plan")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        eprintln!("{}", plan.join("\n"));
        for step in &plan {
            if let Some(what) = step.strip_prefix("SCAN ") {
                assert!(
                    what.starts_with("j VIRTUAL")
                        || what.starts_with("json_each VIRTUAL")
                        || what.starts_with("my")
                        || what.starts_with("mine"),
                    "{step} in the plan of {sql}"
                );
            }
        }
    }
}

#[test]
fn packed_fix_sums_unpack() {
    for du in [-5_000i64, -1, 0, 1, 7] {
        for dm in [-3i64, -1, 0, 1, 2, 9_000] {
            assert_eq!(unpack_fixes(dm * (1 << 32) + du), (du, dm), "{du} {dm}");
        }
    }
}

// ----- erasure -----

#[test]
fn covered_messages_stop_counting_alike_live_and_rebuilt() {
    let mut f = Feed::new();
    let story = erasure_story(&mut f);
    let m = assert_erasure_folds_alike::<Unreads>(&story);
    // dan (joined at seq 3): of the channel-level messages by others, M1
    // is erased and M2 deleted; M3 counts. M1's edit mentioned dan: gone.
    let c1 = |user: &str| -> (u64, u64) {
        let s = summary(&m, user, &["C1"]);
        (s.channels[0].unread_count, s.channels[0].mention_count)
    };
    assert_eq!(c1("dan"), (1, 0));
    // bob read up to M1; M3 is unread; M2 (which mentioned him) is gone.
    assert_eq!(c1("bob"), (1, 0));
    // The thread of M1: bob follows it (replied); R1 is his own, R2 counts,
    // R3 is his own.
    let s = summary(&m, "bob", &["C1"]);
    let th = s
        .threads
        .iter()
        .find(|t| t.root_id == "M1")
        .expect("followed");
    assert_eq!((th.unread_replies, th.mention_count), (1, 0));
}

#[test]
fn an_erasure_counts_as_the_deletes_of_what_it_covers() {
    // The same history, once erased by a user erasure and once with the
    // covered messages deleted instead: the same counts for everyone.
    let history = |f: &mut Feed| {
        vec![
            f.ch(
                CH,
                "bob",
                posted_mentioning("A", "hi @ada", mentions(&["ada"], false, false)),
            ),
            f.ch(
                CH,
                "bob",
                posted_mentioning("B", "all", mentions(&[], true, false)),
            ),
            f.ch(CH, "cy", posted("C", "cy's")),
            f.ch(
                CH,
                "bob",
                reply_mentioning("D", "C", false, mentions(&["ada"], false, false)),
            ),
        ]
    };
    let (mut erased, mut f) = setup();
    let mut evs = history(&mut f);
    evs.push(f.ch(CH, "", content_erased(i64::MAX, &["bob"], &[], 100)));
    erased.apply(&evs);
    let (mut tombstoned, mut g) = setup();
    let mut evs = history(&mut g);
    for id in ["A", "B", "D"] {
        evs.push(g.ch(CH, "bob", deleted(id)));
    }
    tombstoned.apply(&evs);
    for user in ["ada", "bob", "cy"] {
        assert_eq!(
            summary(&erased, user, &[CH]).channels,
            summary(&tombstoned, user, &[CH])
                .channels
                .into_iter()
                .map(|mut c| {
                    // The deletes moved the head; the erasure one event.
                    c.head_seq = summary(&erased, user, &[CH]).channels[0].head_seq;
                    c
                })
                .collect::<Vec<_>>(),
            "{user}"
        );
        assert_eq!(
            summary(&erased, user, &[CH]).threads,
            summary(&tombstoned, user, &[CH]).threads,
            "{user}"
        );
    }
    assert_eq!(counts(&erased, "ada"), (1, 0));
}

#[test]
fn an_erased_post_counts_where_a_live_one_would() {
    let (mut m, mut f) = setup();
    one(
        &mut m,
        f.ch(
            CH,
            "bob",
            posted_erased_mentioning("A", mentions(&["ada"], false, false)),
        ),
    );
    assert_eq!(counts(&m, "ada"), (1, 1));
}
