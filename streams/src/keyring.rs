//! Content keys: message text is sealed in the log and erased by
//! destroying its key (crypto-shredding).
//!
//! The log stream is append-only for everyone (`deny_delete`, `deny_purge`),
//! and an event's bytes are part of its subject's digest chain, so erased
//! text cannot be cut out of the log. Instead every message text is stored
//! encrypted ([`Sealed`]) under the key of its *slot* — (workspace,
//! channel, author, period) — and the keys live in a KV bucket of their own,
//! outside the log (a stream of their own, `<log>_keys`, one subject per
//! slot: a KV bucket denies message deletes, so it cannot erase). Erasing a slot's messages (retention, right to erasure)
//! destroys its key with JetStream's secure erase (the stored key is
//! overwritten on disk): the events stay where they are, `channel_seq` stays
//! dense, the chain still verifies, and the text can never be read again.
//!
//! Invariants:
//! - a text is sealed with the slot of its *post* (an edit with the post's
//!   slot), so destroying a slot erases edits with the posts;
//! - a reader opens every sealed text it hands on ([`Keyring::open`]); a
//!   text whose key is gone stays sealed with an empty `text`, which is how
//!   every fold knows it is erased (`MessagePosted::is_erased`);
//! - "key gone" is an answer, never a guess: a bucket that cannot be
//!   reached is an error ([`KeyError::Unavailable`]), retried by the
//!   caller, not taken for an erasure.

use async_nats::jetstream::{self, stream::DirectGetErrorKind};
use async_nats::HeaderMap;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use switchboard_core::events::{Body, Envelope, Sealed};

/// Bytes of a key's random id.
const KEY_ID_LEN: usize = 16;
/// Bytes of a key.
const KEY_LEN: usize = 32;
/// Keys this process keeps in memory.
const MAX_CACHED_KEYS: usize = 100_000;
/// How long a cached key is used before it is read again: another process
/// may have destroyed it (it also forgets the keys a `ContentErased` names
/// as soon as it reads one).
const KEY_TTL: std::time::Duration = std::time::Duration::from_secs(30);
/// The default period of a slot: a day. A slot is erased whole, so
/// retention erases a message between `days` and `days + 1` days old.
pub const DEFAULT_PERIOD_MS: i64 = 86_400_000;

/// Why a key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key bucket did not answer: retry; nothing may be taken as erased.
    #[error("content keys unavailable: {0}")]
    Unavailable(String),
}

/// One slot's key.
struct Key {
    id: [u8; KEY_ID_LEN],
    key: LessSafeKey,
}

/// A slot as its key's name spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub key_ref: String,
    pub workspace_id: String,
    pub channel_id: String,
    pub author_id: String,
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Slot {
    /// The slot of a text written by `author_id` in `channel_id` at `ts_ms`.
    pub fn of(ws: &str, channel: &str, author: &str, ts_ms: i64, period_ms: i64) -> Slot {
        let period = period_ms.max(1);
        let start_ms = ts_ms - ts_ms.rem_euclid(period);
        let end_ms = start_ms.saturating_add(period);
        Slot {
            key_ref: format!("{ws}.{channel}.{author}.{start_ms}.{end_ms}"),
            workspace_id: ws.into(),
            channel_id: channel.into(),
            author_id: author.into(),
            start_ms,
            end_ms,
        }
    }

    /// Parses a key's name; `None` for a name that is not a slot's.
    pub fn parse(key_ref: &str) -> Option<Slot> {
        let mut parts = key_ref.split('.');
        let (ws, ch, author, start, end) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?.parse().ok()?,
            parts.next()?.parse().ok()?,
        );
        if parts.next().is_some() {
            return None;
        }
        Some(Slot {
            key_ref: key_ref.into(),
            workspace_id: ws.into(),
            channel_id: ch.into(),
            author_id: author.into(),
            start_ms: start,
            end_ms: end,
        })
    }
}

/// The content keys of one log. Cheap to clone.
#[derive(Clone)]
pub struct Keyring {
    inner: Arc<Inner>,
}

struct Inner {
    js: jetstream::Context,
    /// `None`: the key stream does not exist (a read-only tool on a log
    /// that never sealed a text): nothing is sealed, nothing can be opened.
    stream: Option<jetstream::stream::Stream>,
    /// `sbkeys.<log stream>`: a slot's key is on `<prefix>.<key_ref>`.
    prefix: String,
    period_ms: i64,
    cache: Mutex<HashMap<String, (Arc<Key>, std::time::Instant)>>,
    /// Bumped by every [`Keyring::forget`]: a key read from the store
    /// while keys were being forgotten is not cached (it may be one being
    /// destroyed).
    generation: std::sync::atomic::AtomicU64,
    rng: SystemRandom,
}

/// The key stream of the log stream `stream`.
pub fn bucket_name(stream: &str) -> String {
    format!("{stream}_keys")
}

/// The subjects of the key stream of the log stream `stream`.
pub fn key_subjects(stream: &str) -> String {
    format!("sbkeys.{stream}.>")
}

impl Keyring {
    /// Opens (creating it when `create`) the key stream of log stream
    /// `stream`: file storage, deletes allowed (secure erase is how a key
    /// is destroyed), purges denied (a purge does not overwrite).
    pub async fn open_bucket(
        js: &jetstream::Context,
        stream: &str,
        replicas: usize,
        create: bool,
        period_ms: i64,
    ) -> Result<Keyring, KeyError> {
        let name = bucket_name(stream);
        let found = if create {
            Some(
                js.get_or_create_stream(jetstream::stream::Config {
                    name: name.clone(),
                    description: Some("Switchboard content keys (README: erasure)".into()),
                    subjects: vec![key_subjects(stream)],
                    storage: jetstream::stream::StorageType::File,
                    num_replicas: replicas,
                    allow_direct: true,
                    deny_purge: true,
                    ..Default::default()
                })
                .await
                .map_err(|e| KeyError::Unavailable(e.to_string()))?,
            )
        } else {
            // Only "no such stream" means no key was ever made; any other
            // failure must not make every text read as erased.
            match js.get_stream(&name).await {
                Ok(found) => Some(found),
                Err(e) => match e.kind() {
                    jetstream::context::GetStreamErrorKind::JetStream(j)
                        if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
                    {
                        None
                    }
                    _ => return Err(KeyError::Unavailable(e.to_string())),
                },
            }
        };
        Ok(Keyring {
            inner: Arc::new(Inner {
                js: js.clone(),
                stream: found,
                prefix: format!("sbkeys.{stream}"),
                period_ms,
                cache: Mutex::new(HashMap::new()),
                generation: std::sync::atomic::AtomicU64::new(0),
                rng: SystemRandom::new(),
            }),
        })
    }

    fn subject(&self, key_ref: &str) -> String {
        format!("{}.{key_ref}", self.inner.prefix)
    }

    /// The stored key of a slot and its stream sequence; `None`: none.
    async fn stored(&self, key_ref: &str) -> Result<Option<(u64, bytes::Bytes)>, KeyError> {
        let Some(stream) = &self.inner.stream else {
            return Ok(None);
        };
        match stream
            .direct_get_last_for_subject(self.subject(key_ref))
            .await
        {
            Ok(m) => Ok(Some((m.sequence, m.payload))),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(KeyError::Unavailable(e.to_string())),
        }
    }

    /// The length of a slot, ms.
    pub fn period_ms(&self) -> i64 {
        self.inner.period_ms
    }

    fn cached(&self, key_ref: &str) -> Option<Arc<Key>> {
        self.inner
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key_ref)
            .filter(|(_, at)| at.elapsed() < KEY_TTL)
            .map(|(k, _)| k.clone())
    }

    fn generation(&self) -> u64 {
        self.inner
            .generation
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Caches `key` unless keys were forgotten since `generation` (read
    /// before the key was).
    fn remember(&self, key_ref: &str, key: Arc<Key>, generation: u64) {
        let mut cache = self
            .inner
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.generation() != generation {
            return;
        }
        if cache.len() >= MAX_CACHED_KEYS {
            cache.clear();
        }
        cache.insert(key_ref.to_string(), (key, std::time::Instant::now()));
    }

    /// Forgets cached keys (they were destroyed, here or by another process).
    pub fn forget(&self, key_refs: &[String]) {
        let mut cache = self
            .inner
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.inner
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        for r in key_refs {
            cache.remove(r);
        }
    }

    /// The slot's key as stored; `None` when there is none (destroyed, or
    /// never made).
    async fn load(&self, key_ref: &str) -> Result<Option<Arc<Key>>, KeyError> {
        if let Some(k) = self.cached(key_ref) {
            return Ok(Some(k));
        }
        self.load_stored(key_ref).await
    }

    /// [`Keyring::load`] past the cache.
    async fn load_stored(&self, key_ref: &str) -> Result<Option<Arc<Key>>, KeyError> {
        let generation = self.generation();
        let Some((_, raw)) = self.stored(key_ref).await? else {
            return Ok(None);
        };
        let Some(key) = parse_key(&raw) else {
            return Ok(None);
        };
        let key = Arc::new(key);
        self.remember(key_ref, key.clone(), generation);
        Ok(Some(key))
    }

    /// The slot's key, made when it has none yet (one winner among
    /// concurrent makers: KV create).
    async fn key_for(&self, key_ref: &str) -> Result<Arc<Key>, KeyError> {
        if let Some(k) = self.load(key_ref).await? {
            return Ok(k);
        }
        if self.inner.stream.is_none() {
            return Err(KeyError::Unavailable("no key stream (read-only)".into()));
        }
        let generation = self.generation();
        let mut raw = [0u8; KEY_ID_LEN + KEY_LEN];
        self.inner
            .rng
            .fill(&mut raw)
            .map_err(|_| KeyError::Unavailable("no randomness".into()))?;
        // Only if the slot has no key yet: one winner among makers.
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Expected-Last-Subject-Sequence", "0");
        let made = match self
            .inner
            .js
            .publish_with_headers(self.subject(key_ref), headers, raw.to_vec().into())
            .await
        {
            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match made {
            Ok(()) => {
                let key = Arc::new(
                    parse_key(&raw).ok_or_else(|| KeyError::Unavailable("bad key".into()))?,
                );
                self.remember(key_ref, key.clone(), generation);
                Ok(key)
            }
            // Another writer made it first: use theirs.
            Err(e) => self.load(key_ref).await?.ok_or(KeyError::Unavailable(e)),
        }
    }

    /// Seals the text of a post or an edit in `env` (nothing else carries
    /// text): the text moves into `sealed`, encrypted under its slot's key.
    /// A body without text, or already sealed, is left as it is.
    pub async fn seal(&self, env: &mut Envelope) -> Result<(), KeyError> {
        let (ws, ch, actor, ts) = (
            env.workspace_id.clone(),
            env.channel_id.clone(),
            env.actor_id.clone(),
            env.ts_ms,
        );
        let (message_id, text, sealed, slot_ts) = match env.body.as_mut() {
            Some(Body::MessagePosted(p)) => (&p.message_id, &mut p.text, &mut p.sealed, ts),
            Some(Body::MessageEdited(e)) => {
                let at = if e.original_ts_ms > 0 {
                    e.original_ts_ms
                } else {
                    ts
                };
                (&e.message_id, &mut e.text, &mut e.sealed, at)
            }
            _ => return Ok(()),
        };
        if text.is_empty() || sealed.is_some() {
            return Ok(());
        }
        let slot = Slot::of(&ws, &ch, &actor, slot_ts, self.inner.period_ms);
        let key = self.key_for(&slot.key_ref).await?;
        let mut nonce = [0u8; NONCE_LEN];
        self.inner
            .rng
            .fill(&mut nonce)
            .map_err(|_| KeyError::Unavailable("no randomness".into()))?;
        let aad = aad(&ws, &ch, message_id);
        let mut data = std::mem::take(text).into_bytes();
        key.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut data,
            )
            .map_err(|_| KeyError::Unavailable("sealing failed".into()))?;
        *sealed = Some(Sealed {
            key_ref: slot.key_ref,
            key_id: key.id.to_vec(),
            nonce: nonce.to_vec(),
            ciphertext: data,
        });
        Ok(())
    }

    /// Opens the sealed text of `env`, if it has one: the text back in
    /// `text`, `sealed` cleared. When the key is destroyed (or is another
    /// key of the slot, made after an erasure) the body is left sealed with
    /// an empty text: erased. A `ContentErased` makes this process forget
    /// the keys it names.
    pub async fn open(&self, env: &mut Envelope) -> Result<(), KeyError> {
        let (ws, ch) = (env.workspace_id.clone(), env.channel_id.clone());
        let (message_id, text, sealed) = match env.body.as_mut() {
            Some(Body::MessagePosted(p)) => (&p.message_id, &mut p.text, &mut p.sealed),
            Some(Body::MessageEdited(e)) => (&e.message_id, &mut e.text, &mut e.sealed),
            Some(Body::ContentErased(c)) => {
                self.forget(&c.key_refs);
                return Ok(());
            }
            _ => return Ok(()),
        };
        let Some(s) = sealed.as_ref() else {
            return Ok(());
        };
        text.clear();
        let Some(mut key) = self.load(&s.key_ref).await? else {
            return Ok(());
        };
        if key.id[..] != s.key_id[..] {
            // A cached key may be an older one of the slot: read the store
            // once before calling the text erased.
            match self.load_stored(&s.key_ref).await? {
                Some(k) if k.id[..] == s.key_id[..] => key = k,
                _ => return Ok(()),
            }
        }
        let Ok(nonce) = Nonce::try_assume_unique_for_key(&s.nonce) else {
            return Ok(());
        };
        let aad = aad(&ws, &ch, message_id);
        let mut data = s.ciphertext.clone();
        let Ok(plain) = key
            .key
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut data)
        else {
            return Ok(());
        };
        let Ok(plain) = std::str::from_utf8(plain) else {
            return Ok(());
        };
        *text = plain.to_string();
        *sealed = None;
        Ok(())
    }

    /// Every slot of `channel` of `workspace` whose key is stored now.
    pub async fn channel_slots(
        &self,
        workspace: &str,
        channel: &str,
    ) -> Result<Vec<Slot>, KeyError> {
        let mut slots = self
            .slots_under(workspace, &format!("{workspace}.{channel}.>"))
            .await?;
        slots.retain(|s| s.channel_id == channel);
        Ok(slots)
    }

    /// Every slot of `workspace` whose key is stored now (the key
    /// stream's subjects under the workspace).
    pub async fn slots(&self, workspace: &str) -> Result<Vec<Slot>, KeyError> {
        self.slots_under(workspace, &format!("{workspace}.>")).await
    }

    async fn slots_under(&self, workspace: &str, filter: &str) -> Result<Vec<Slot>, KeyError> {
        use futures_util::TryStreamExt;
        let Some(stream) = &self.inner.stream else {
            return Ok(Vec::new());
        };
        let subjects: Vec<(String, usize)> = stream
            .info_with_subjects(format!("{}.{filter}", self.inner.prefix))
            .await
            .map_err(|e| KeyError::Unavailable(e.to_string()))?
            .try_collect()
            .await
            .map_err(|e| KeyError::Unavailable(e.to_string()))?;
        let skip = self.inner.prefix.len() + 1;
        Ok(subjects
            .iter()
            .filter(|(_, n)| *n > 0)
            .filter_map(|(subject, _)| subject.get(skip..).and_then(Slot::parse))
            .filter(|s| s.workspace_id == workspace)
            .collect())
    }

    /// Destroys the keys of `key_refs` for good: each stored key is erased
    /// with JetStream's secure erase (its bytes overwritten in the store),
    /// and forgotten here. A key already gone is fine (idempotent).
    pub async fn destroy(&self, key_refs: &[String]) -> Result<(), KeyError> {
        let Some(stream) = &self.inner.stream else {
            return Ok(());
        };
        self.forget(key_refs);
        for r in key_refs {
            // One key a slot, but a slot made anew after an erasure has
            // another: erase whatever is there, until nothing is.
            for _ in 0..8 {
                let Some((seq, _)) = self.stored(r).await? else {
                    break;
                };
                stream
                    .delete_message(seq)
                    .await
                    .map_err(|e| KeyError::Unavailable(e.to_string()))?;
            }
        }
        self.forget(key_refs);
        Ok(())
    }
}

fn aad(ws: &str, ch: &str, message_id: &str) -> String {
    format!("{ws}/{ch}/{message_id}")
}

fn parse_key(raw: &[u8]) -> Option<Key> {
    if raw.len() != KEY_ID_LEN + KEY_LEN {
        return None;
    }
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&raw[..KEY_ID_LEN]);
    let key = UnboundKey::new(&CHACHA20_POLY1305, &raw[KEY_ID_LEN..]).ok()?;
    Some(Key {
        id,
        key: LessSafeKey::new(key),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_spans_its_period_and_parses_back() {
        let s = Slot::of("W1", "C1", "U1", 86_400_000 + 5, DEFAULT_PERIOD_MS);
        assert_eq!(s.start_ms, 86_400_000);
        assert_eq!(s.end_ms, 2 * 86_400_000);
        assert_eq!(Slot::parse(&s.key_ref), Some(s.clone()));
        assert_eq!(Slot::parse("W1.C1.U1.x.1"), None);
        assert_eq!(Slot::parse("W1.C1.U1.1.2.3"), None);
        // Before the epoch the slot still contains its instant.
        let n = Slot::of("W", "C", "U", -1, 1000);
        assert!(n.start_ms <= -1 && -1 < n.end_ms);
    }
}
