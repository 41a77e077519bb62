//! `switchboard-bench search`: the search read model at scale — indexing
//! rate through the projector's own commit path next to a raw FTS5 insert
//! of the same texts in the same run, and query latency for readers of 200
//! and of 2,000 channels.
//!
//! The corpus is generated deterministically (a seeded PRNG): `--messages`
//! posts round-robin over `--channels` channels from 50 senders, in four
//! languages — 70% English-like, 10% French-like (with diacritics), 10%
//! German-like, 10% Japanese (kana and kanji, no spaces) — each a Zipf
//! (s = 1) draw from a 20,000-word vocabulary per language, 4–30 words a
//! message; every 10th post is a thread reply, every 25th carries a link,
//! every 15th mentions a user.
//!
//! Indexing: events are generated in chunks of 2,000 (the runner's largest
//! batch) and folded with `apply_batch::<Search>` (the fold's statements,
//! index writes, checkpoint, one transaction per chunk) into a fresh file; the
//! baseline inserts the same texts into a bare FTS5 table with the same
//! tokenizer, one transaction per chunk, same WAL / `synchronous=NORMAL`
//! settings; a second baseline inserts the projector's own column values
//! (text, file names, bigrams, facets; read back untimed) into a bare FTS5
//! table with the same options. The three take each chunk in turn, so
//! the machine's load changing during the run weighs on all of them alike.
//! Only the writes are timed, not the generation.
//!
//! Queries run `switchboard_projections::search::search` (the function
//! `GET /v1/search` calls, first page of 20 with snippets) on a read-only
//! connection, one at a time. The readers: one who can read 200 of the
//! channels, one whose readable set has 2,000 ids (every channel of the
//! corpus plus 1,000 DMs and private channels with no messages here). The
//! HTTP layer, ACL lookups and the message views are not in these figures.

use crate::stats::{ms, LatencySummary};
use anyhow::{Context, Result};
use clap::Parser;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use switchboard_core::events::{envelope::Body, Envelope, Mentions, MessagePosted};
use switchboard_core::search::parse;
use switchboard_projections::search::{search, Scope, Search};
use switchboard_projections::{apply_batch, open_model, open_writer};
use switchboard_streams::LogEvent;

const BATCH: usize = 2_000;
const SENDERS: u64 = 50;
const VOCAB: usize = 20_000;
const WS: &str = "Wbench";

#[derive(Parser, Debug, Clone)]
pub struct SearchArgs {
    /// Messages to index.
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,
    /// Channels they are spread over.
    #[arg(long, default_value_t = 1_000)]
    pub channels: u64,
    /// Queries per kind and reader.
    #[arg(long, default_value_t = 200)]
    pub samples: usize,
    /// Directory for the two database files (default: a temporary one,
    /// removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Latency of one query kind for one reader.
#[derive(Debug, Clone)]
pub struct QueryFigure {
    pub reader: &'static str,
    pub kind: &'static str,
    pub latency: LatencySummary,
    /// Mean results per first page (20 at most), to show queries match.
    pub mean_hits: f64,
}

/// The outcome of one `search` bench.
#[derive(Debug, Clone)]
pub struct SearchRun {
    pub messages: u64,
    pub index_secs: f64,
    pub raw_secs: f64,
    /// The same column values the projector indexed (text, file names,
    /// bigrams, filter facets), into a bare FTS5 table with the same
    /// tokenizer and prefix indexes: what FTS5 itself costs for these rows.
    pub same_rows_secs: f64,
    pub index_bytes: u64,
    pub raw_bytes: u64,
    pub queries: Vec<QueryFigure>,
}

impl SearchRun {
    pub fn index_rate(&self) -> f64 {
        self.messages as f64 / self.index_secs.max(1e-9)
    }
    pub fn raw_rate(&self) -> f64 {
        self.messages as f64 / self.raw_secs.max(1e-9)
    }
    pub fn same_rows_rate(&self) -> f64 {
        self.messages as f64 / self.same_rows_secs.max(1e-9)
    }
}

/// xorshift64*: deterministic, fast, good enough for a corpus.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lang {
    En,
    Fr,
    De,
    Ja,
}

/// A language's words and the Zipf CDF over their ranks.
struct Vocab {
    words: Vec<String>,
    cdf: Vec<f64>,
    spaced: bool,
}

impl Vocab {
    fn new(lang: Lang, seed: u64) -> Vocab {
        let mut rng = Rng(seed);
        let syllables: &[&str] = match lang {
            Lang::En => &[
                "de", "ploy", "re", "lease", "train", "tes", "ting", "ser", "ver", "ma", "chine",
                "bu", "ild", "com", "mit", "pro", "duct", "me", "et", "ing", "up", "date", "fix",
                "bug", "net", "work", "da", "ta", "ba", "se", "in", "dex", "que", "ry", "lo", "ad",
            ],
            Lang::Fr => &[
                "ré", "un", "ion", "dé", "ploi", "ca", "fé", "crè", "me", "é", "té", "pro", "jet",
                "équi", "pe", "mai", "son", "fê", "te", "ga", "teau", "ver", "sion", "tâ", "che",
            ],
            Lang::De => &[
                "be", "spre", "chung", "ver", "öf", "fent", "li", "chung", "über", "prü", "fung",
                "zu", "stän", "dig", "keit", "ar", "beit", "kaf", "fee", "lauf", "zeit", "grö",
                "ße",
            ],
            Lang::Ja => &[
                "東", "京", "大", "阪", "会", "議", "資", "料", "確", "認", "予", "定", "変", "更",
                "開", "発", "環", "境", "本", "番", "リ", "リー", "ス", "テ", "スト", "デ", "プ",
                "ロイ", "サー", "バー", "の", "に", "を", "は", "で", "す",
            ],
        };
        let mut seen = std::collections::HashSet::new();
        let mut words = Vec::with_capacity(VOCAB);
        while words.len() < VOCAB {
            let n = 1 + rng.below(3) + u64::from(words.len() > 2_000);
            let w: String = (0..n)
                .map(|_| syllables[rng.below(syllables.len() as u64) as usize])
                .collect();
            if seen.insert(w.clone()) {
                words.push(w);
            }
        }
        let mut cdf = Vec::with_capacity(VOCAB);
        let mut acc = 0.0;
        for rank in 1..=VOCAB {
            acc += 1.0 / rank as f64;
            cdf.push(acc);
        }
        for c in &mut cdf {
            *c /= acc;
        }
        Vocab {
            words,
            cdf,
            spaced: lang != Lang::Ja,
        }
    }

    fn draw(&self, rng: &mut Rng) -> &str {
        let u = rng.unit();
        let i = self
            .cdf
            .partition_point(|c| *c < u)
            .min(self.words.len() - 1);
        &self.words[i]
    }

    fn message(&self, rng: &mut Rng) -> String {
        let n = 4 + rng.below(27);
        let words: Vec<&str> = (0..n).map(|_| self.draw(rng)).collect();
        if self.spaced {
            words.join(" ")
        } else {
            words.concat()
        }
    }
}

struct Corpus {
    vocabs: Vec<(Lang, Vocab)>,
    rng: Rng,
    channels: u64,
    seqs: Vec<u64>,
    next: u64,
}

impl Corpus {
    fn new(channels: u64) -> Corpus {
        Corpus {
            vocabs: [(Lang::En, 1), (Lang::Fr, 2), (Lang::De, 3), (Lang::Ja, 4)]
                .into_iter()
                .map(|(l, s)| (l, Vocab::new(l, 0x9E37_79B9 * s)))
                .collect(),
            rng: Rng(0xDEAD_BEEF),
            channels: channels.max(1),
            seqs: vec![0; channels.max(1) as usize],
            next: 0,
        }
    }

    fn vocab(&self, lang: Lang) -> &Vocab {
        &self
            .vocabs
            .iter()
            .find(|(l, _)| *l == lang)
            .expect("vocab")
            .1
    }

    /// The next `n` post events (stream seqs continue across calls).
    fn chunk(&mut self, n: u64) -> Vec<LogEvent> {
        (0..n)
            .map(|_| {
                let i = self.next;
                self.next += 1;
                let c = (i % self.channels) as usize;
                self.seqs[c] += 1;
                let roll = self.rng.below(10);
                let lang = match roll {
                    0 => Lang::Fr,
                    1 => Lang::De,
                    2 => Lang::Ja,
                    _ => Lang::En,
                };
                let vocab = &self
                    .vocabs
                    .iter()
                    .find(|(l, _)| *l == lang)
                    .expect("vocab")
                    .1;
                let mut text = vocab.message(&mut self.rng);
                if i % 25 == 0 {
                    text.push_str(" https://ci.example.com/build/");
                    text.push_str(&i.to_string());
                }
                let sender = self.rng.below(SENDERS);
                let mentions = (i % 15 == 0).then(|| Mentions {
                    user_ids: vec![format!("U{}", (sender + 1) % SENDERS)],
                    ..Default::default()
                });
                // A reply to the channel's previous post every 10th post.
                let root = if i % 10 == 9 && i >= self.channels {
                    format!("M{:012}", i - self.channels)
                } else {
                    String::new()
                };
                LogEvent {
                    stream_seq: i + 1,
                    pending: 0,
                    subject: format!("sb.{WS}.ch.C{c}"),
                    envelope: Some(Envelope {
                        event_id: format!("E{i}"),
                        workspace_id: WS.into(),
                        channel_id: format!("C{c}"),
                        actor_id: format!("U{sender}"),
                        ts_ms: 1_700_000_000_000 + (i as i64) * 1_000,
                        channel_seq: self.seqs[c],
                        fence_seq: 0,
                        request_id: String::new(),

                        prev_digest: Vec::new(),
                        body: Some(Body::MessagePosted(MessagePosted {
                            message_id: format!("M{i:012}"),
                            text,
                            thread_root_id: root,
                            mentions,
                            ..Default::default()
                        })),
                    }),
                }
            })
            .collect()
    }
}

fn text_of(ev: &LogEvent) -> &str {
    match ev.envelope.as_ref().and_then(|e| e.body.as_ref()) {
        Some(Body::MessagePosted(p)) => &p.text,
        _ => "",
    }
}

fn file_bytes(path: &std::path::Path) -> u64 {
    ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", path.display())).ok())
        .map(|m| m.len())
        .sum()
}

/// The query kinds, as query strings drawn from the corpus' vocabularies.
fn queries(corpus: &Corpus, rng: &mut Rng, kind: &str) -> String {
    let en = corpus.vocab(Lang::En);
    // Words users search for: not the stop-word-like head of the Zipf
    // curve, a rank between 20 and 5,000.
    let pick = |rng: &mut Rng, v: &Vocab| v.words[20 + rng.below(4_980) as usize].clone();
    match kind {
        "single word" => {
            let langs = [Lang::En, Lang::En, Lang::Fr, Lang::De, Lang::Ja];
            let v = corpus.vocab(langs[rng.below(5) as usize]);
            pick(rng, v)
        }
        "two words" => {
            let a = en.words[rng.below(200) as usize].clone();
            format!("{a} {}", pick(rng, en))
        }
        "phrase" => {
            let msg = en.message(rng);
            let words: Vec<&str> = msg.split(' ').collect();
            let i = rng.below(words.len().saturating_sub(1) as u64) as usize;
            format!("\"{} {}\"", words[i], words.get(i + 1).unwrap_or(&words[i]))
        }
        "prefix" => {
            let w = en.words[rng.below(2_000) as usize].clone();
            let stem: String = w.chars().take(4).collect();
            format!("{stem}*")
        }
        _ => {
            // Filtered: a common word by one sender with a link, or in one
            // channel.
            let w = en.words[rng.below(100) as usize].clone();
            if rng.below(2) == 0 {
                format!("{w} from:@u{} has:link", rng.below(SENDERS))
            } else {
                format!("{w} in:#c{}", rng.below(corpus.channels))
            }
        }
    }
}

/// Resolves the `from:`/`in:` filters of a bench query the way the
/// gateway does (handles `u<N>` → `U<N>`, channel names `c<N>` → `C<N>`).
fn scope_for(q: &switchboard_core::search::Query, readable: &[String]) -> Scope {
    let senders = (!q.filters.from.is_empty())
        .then(|| q.filters.from.iter().map(|h| h.to_uppercase()).collect());
    let channels = (!q.filters.in_channels.is_empty()).then(|| {
        q.filters
            .in_channels
            .iter()
            .map(|n| n.to_uppercase())
            .collect()
    });
    Scope {
        workspace_id: WS.into(),
        readable: readable.to_vec(),
        channels,
        senders,
        ..Scope::default()
    }
    .with_flags(&q.filters)
}

pub async fn run(a: SearchArgs) -> Result<SearchRun> {
    tokio::task::spawn_blocking(move || run_blocking(a))
        .await
        .context("the search bench task")?
}

fn run_blocking(a: SearchArgs) -> Result<SearchRun> {
    let tmp = tempfile::tempdir().context("temp dir")?;
    let dir = a.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let index_path = dir.join("search.db");
    let raw_path = dir.join("raw-fts5.db");
    for p in [&index_path, &raw_path] {
        for s in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{s}", p.display()));
        }
    }

    // The three writers, fed the same chunks in turn (projector, then the
    // bare table of its column values, then the bare table of the texts),
    // so a change of the machine's load during the run hits all three
    // alike.
    let (mut conn, _) = open_model::<Search>(&index_path).context("opening the index")?;
    let mut raw = open_writer(&raw_path)?;
    raw.execute_batch(
        "CREATE VIRTUAL TABLE raw USING fts5(text, tokenize = 'unicode61 remove_diacritics 2')",
    )?;
    let same_path = dir.join("same-rows-fts5.db");
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{s}", same_path.display()));
    }
    let mut same = open_writer(&same_path)?;
    same.execute_batch(
        "CREATE VIRTUAL TABLE same USING fts5(text, files, grams, meta,
             tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3 4')",
    )?;
    let source = rusqlite::Connection::open_with_flags(
        &index_path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    let mut corpus = Corpus::new(a.channels);
    let (mut index_time, mut raw_time, mut same_time) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut left = a.messages;
    let mut after = 0i64;
    while left > 0 {
        let n = left.min(BATCH as u64);
        let chunk = corpus.chunk(n);
        left -= n;

        let t = Instant::now();
        apply_batch::<Search>(&mut conn, &chunk)?;
        index_time += t.elapsed();

        // The projector's own column values for these rows (not timed).
        let rows: Vec<(i64, String, String, String, String)> = source
            .prepare_cached(
                "SELECT id, text, files, grams, meta FROM docs WHERE id > ?1 ORDER BY id",
            )?
            .query_map([after], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        if let Some(last) = rows.last() {
            after = last.0;
        }
        let t = Instant::now();
        let tx = same.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO same (rowid, text, files, grams, meta) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for r in &rows {
                stmt.execute(rusqlite::params![r.0, r.1, r.2, r.3, r.4])?;
            }
        }
        tx.commit()?;
        same_time += t.elapsed();

        let t = Instant::now();
        let tx = raw.transaction()?;
        {
            let mut stmt = tx.prepare_cached("INSERT INTO raw (rowid, text) VALUES (?1, ?2)")?;
            for ev in &chunk {
                stmt.execute(rusqlite::params![ev.stream_seq as i64, text_of(ev)])?;
            }
        }
        tx.commit()?;
        raw_time += t.elapsed();
    }
    drop((conn, raw, same, source));
    eprintln!(
        "indexed {} messages in {:.1} s; raw FTS5 insert of the projector's column values \
         in {:.1} s; of the same texts in {:.1} s",
        a.messages,
        index_time.as_secs_f64(),
        same_time.as_secs_f64(),
        raw_time.as_secs_f64()
    );

    // Queries.
    let reader = rusqlite::Connection::open_with_flags(
        &index_path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let mut rng = Rng(0x5EED);
    let mut few: Vec<u64> = (0..a.channels).collect();
    for i in (1..few.len()).rev() {
        few.swap(i, rng.below(i as u64 + 1) as usize);
    }
    few.truncate(200.min(a.channels as usize));
    let readers: [(&'static str, Vec<String>); 2] = [
        (
            "reads 200 channels",
            few.iter().map(|c| format!("C{c}")).collect(),
        ),
        (
            "reads 2,000 channels",
            (0..a.channels)
                .map(|c| format!("C{c}"))
                .chain((0..2_000u64.saturating_sub(a.channels)).map(|d| format!("D{d}")))
                .collect(),
        ),
    ];
    let corpus = Corpus::new(a.channels);
    let now = 1_700_000_000_000 + a.messages as i64 * 1_000;
    let mut figures = Vec::new();
    for (who, readable) in &readers {
        for kind in ["single word", "two words", "phrase", "prefix", "filtered"] {
            let mut samples = Vec::with_capacity(a.samples);
            let mut hits = 0usize;
            for _ in 0..a.samples {
                let text = queries(&corpus, &mut rng, kind);
                let q = parse(&text).map_err(|e| anyhow::anyhow!("{text}: {e}"))?;
                let scope = scope_for(&q, readable);
                let t = Instant::now();
                let found = search(&reader, &q, &scope, None, now, 20)
                    .with_context(|| format!("query {text}"))?;
                samples.push(t.elapsed());
                hits += found.hits.len();
            }
            let latency = LatencySummary::of(samples);
            let mean_hits = hits as f64 / a.samples.max(1) as f64;
            println!(
                "{who:<22} {kind:<12} {}  mean hits {mean_hits:.1}",
                latency.line()
            );
            figures.push(QueryFigure {
                reader: who,
                kind,
                latency,
                mean_hits,
            });
        }
    }
    let run = SearchRun {
        messages: a.messages,
        index_secs: index_time.as_secs_f64(),
        raw_secs: raw_time.as_secs_f64(),
        same_rows_secs: same_time.as_secs_f64(),
        index_bytes: file_bytes(&index_path),
        raw_bytes: file_bytes(&raw_path),
        queries: figures,
    };
    println!(
        "indexing: {:.0} msgs/s through the projector; raw FTS5 of the same rows (columns, \
         options) {:.0} msgs/s (ratio {:.2}); raw FTS5 of the text alone {:.0} msgs/s \
         (ratio {:.2}); files {:.0} MiB vs {:.0} MiB (text alone)",
        run.index_rate(),
        run.same_rows_rate(),
        run.index_rate() / run.same_rows_rate(),
        run.raw_rate(),
        run.index_rate() / run.raw_rate(),
        run.index_bytes as f64 / 1_048_576.0,
        run.raw_bytes as f64 / 1_048_576.0,
    );
    let worst = run
        .queries
        .iter()
        .map(|f| ms(f.latency.p99))
        .fold(0.0, f64::max);
    println!("worst p99 over every kind and reader: {worst:.2} ms");
    Ok(run)
}
