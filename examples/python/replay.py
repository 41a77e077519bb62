#!/usr/bin/env python3
"""Replays one Switchboard workspace from the log and prints per-channel
message counts as JSON (see docs/replay.md, "The examples"). While it
replays it checks each subject's hash chain (`Envelope.prev_digest`) and
every signed head checkpoint (docs/replay.md, "Tamper evidence").

Set up first with ./setup.sh (a virtualenv with pinned nats-py, protobuf
and cryptography, and events_pb2.py generated from core/proto), then:

    .venv/bin/python replay.py --nats nats://user:pass@127.0.0.1:4222 --workspace W1
    .venv/bin/python replay.py --nats ... --workspace W1 --since 2026-11-28T12:00:00Z
    .venv/bin/python replay.py --nats ... --workspace W1 --public-key data/keys/checkpoint.pub

Exit status: 0 when everything checked out; 3 a gap in channel_seq; 4 a
broken hash chain; 5 a signed checkpoint names a head the log no longer
holds, or holds with other content; 6 a checkpoint whose signature does
not verify. When several apply, the highest.

The replay is bounded: it stops after the workspace's events pending when
its consumer was created (the consumer's info right after creation).
Needs: creating an ephemeral pull consumer filtered to sb.<W>.>, and
fetching its messages; with --since also the stream's info and direct (or
message) gets, to find where to start (see docs/replay.md, "Permissions a
replay needs" and "Where to start").

--since is exact by the envelopes' own `ts_ms`, whatever times the stream
stored the messages at (a replay credential's copy stores its creation
time for every event copied then): a binary search over the stream's
sequences (direct gets of the next sb.<W>.> message) finds the first
position whose event is at or after `since - --since-margin`, a consumer
starts there, and events before `since` are skipped until each subject's
first one at or after it.
"""

import argparse
import asyncio
import datetime
import hashlib
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

try:
    import nats
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from google.protobuf.message import DecodeError
    from nats.js import api
    from nats.js.errors import NotFoundError
    from switchboard.v1 import events_pb2
except ImportError as e:  # pragma: no cover - set-up hint
    sys.exit(f"replay.py: {e}; run examples/python/setup.sh and use its .venv/bin/python")


def parse_args(argv):
    p = argparse.ArgumentParser(description="Replay one Switchboard workspace; print per-channel counts as JSON.")
    p.add_argument("--nats", default="nats://127.0.0.1:4222",
                   help="NATS URL; credentials may be in it (nats://user:password@host:port)")
    p.add_argument("--workspace", required=True, help="the workspace id W (subject filter sb.W.>)")
    p.add_argument("--stream", default="SB", help="the log's JetStream stream (default SB)")
    p.add_argument("--inbox-prefix", default="_INBOX",
                   help="prefix of this client's reply subjects (default _INBOX); replay credentials "
                        "grant subscribe on <prefix>.> for a prefix of their own")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--since", help="start at the first event whose envelope ts_ms is at or after this "
                                        "RFC 3339 time")
    start.add_argument("--start-seq", type=int, help="start at this stream sequence")
    p.add_argument("--since-margin", type=float, default=DEFAULT_SINCE_MARGIN_SECS, metavar="SECS",
                   help="with --since, the search for the start position aims this many seconds earlier "
                        "(events of different subjects may be stored up to that much out of ts_ms order); "
                        f"default {DEFAULT_SINCE_MARGIN_SECS:g}")
    p.add_argument("--idle-timeout", type=float, default=30.0,
                   help="fail when no event arrives for this many seconds (default 30)")
    p.add_argument("--public-key", action="append", default=[], metavar="KEY|FILE",
                   help="a checkpoint public key to trust: 64 hex digits (comma-separated or repeated, "
                        "one per signing gateway, as `switchboard verify-log --public-key` takes them), "
                        "or a file holding them, e.g. <data>/keys/checkpoint.pub. Without one, a "
                        "checkpoint is checked against the key it carries, which proves nothing")
    args = p.parse_args(argv)
    if not args.since_margin >= 0:
        p.error("--since-margin must be a number of seconds, 0 or more")
    try:
        args.keys = parse_keys(args.public_key)
    except ValueError as e:
        p.error(str(e))
    return args


# --since: how much earlier than `since` the start position is searched
# for. ts_ms is the decision's time, taken before the append; events of
# different subjects reach the stream in roughly, not exactly, ts_ms order.
DEFAULT_SINCE_MARGIN_SECS = 60.0

# Exit statuses (docs/replay.md, "Tamper evidence"); the highest that applies.
EXIT_GAP = 3
EXIT_CHAIN = 4
EXIT_CHECKPOINT_HEAD = 5
EXIT_CHECKPOINT_SIGNATURE = 6

HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")


def parse_keys(values):
    """The trusted ed25519 public keys (32 bytes each) from --public-key
    values: hex keys, comma-separated, or files holding such keys."""
    keys = []
    for value in values:
        text = value
        if not all(HEX_KEY.fullmatch(k.strip()) for k in value.split(",")):
            try:
                with open(value, encoding="utf-8") as f:
                    text = f.read()
            except OSError as e:
                raise ValueError(f"--public-key {value!r}: neither 64 hex digits nor a readable file ({e})")
        for k in re.split(r"[,\s]+", text.strip()):
            if not HEX_KEY.fullmatch(k):
                raise ValueError(f"--public-key {value!r}: {k!r} is not 64 hex digits")
            keys.append(Ed25519PublicKey.from_public_bytes(bytes.fromhex(k)))
    return keys


def canonical(heads):
    """The text a checkpoint signs (streams/src/checkpoint.rs, canonical):
    per head, in order, `<subject> <channel_seq> <stream_seq> <hex digest>\\n`."""
    return "".join(f"{h.subject} {h.channel_seq} {h.stream_seq} {h.digest.hex()}\n" for h in heads).encode()


def signature_ok(key, signature, text):
    try:
        key.verify(signature, text)
        return True
    except InvalidSignature:
        return False


def is_checkpoint(subject):
    parts = subject.split(".")
    return len(parts) == 3 and parts[2] == "checkpoint"


def parse_time(s):
    # fromisoformat takes "Z" only from Python 3.11 on.
    t = datetime.datetime.fromisoformat(s[:-1] + "+00:00" if s[-1:] in ("Z", "z") else s)
    if t.tzinfo is None:
        raise ValueError(f"--since {s!r}: an RFC 3339 time needs an offset (Z or +hh:mm)")
    return t.astimezone(datetime.timezone.utc)


class Replay:
    """The fold: per-channel counts, the dense-sequence check, each
    subject's hash chain and the signed head checkpoints."""

    def __init__(self, from_start, keys=(), since_ms=None):
        self.from_start = from_start
        # --since: an event whose ts_ms is earlier is skipped, until a
        # subject's first event at or after it (from there on the subject's
        # events are all kept: the chain and channel_seq stay whole).
        self.since_ms = since_ms
        # events delivered but skipped as before `since`, and per subject
        # the highest channel_seq skipped (before the replay's start)
        self.skipped = 0
        self.skipped_heads = {}
        # trusted checkpoint keys (Ed25519PublicKey); none: each
        # checkpoint's own, which proves nothing against a forger
        self.keys = list(keys)
        self.events = 0
        # the stream sequence of the last event applied
        self.stream_seq = 0
        # the stream sequence of the first event kept, and its sequence in
        # the log (a replay stream's copy names it in Nats-Stream-Source;
        # checkpoints name log sequences)
        self.first_stream_seq = None
        self.first_log_seq = None
        self.unknown = 0
        self.undecodable = 0
        # subjects on which a payload that is no envelope was delivered
        self.undecodable_subjects = set()
        self.channels = {}
        # subject -> the last channel_seq seen on it
        self.last_seq = {}
        self.gaps = []
        # message id -> (channel, deleted?) for messages the history lists
        self.listed = {}
        # The hash chain: subject -> (channel_seq, digest, stream_seq,
        # chained?) of the last envelope on it (streams/src/chain.rs, Tip).
        self.tips = {}
        # subject -> {channel_seq: digest} of every envelope seen, and the
        # first channel_seq seen (what a checkpoint's heads are compared to)
        self.seen = {}
        self.base = {}
        self.chain = {"checked": 0, "unchained": 0, "bases": 0, "findings": []}
        self.checkpoints = {"read": 0, "verified": 0, "trusted_keys": len(self.keys),
                            "heads_checked": 0, "heads_unchecked": 0, "findings": []}

    def channel(self, cid):
        return self.channels.setdefault(cid, {
            "messages": 0, "deleted": 0, "live": 0, "replies": 0,
            "events": 0, "last_channel_seq": 0,
        })

    def keep(self, subject, env):
        """With --since: is this delivered event at or after the start?
        A subject's events are kept from its first one whose ts_ms is at or
        after `since` on (ts_ms is monotonic per subject); a payload that is
        no envelope has no time: kept once an event was kept."""
        if self.since_ms is None or subject in self.tips:
            return True
        if env is None:
            return self.first_stream_seq is not None
        if env.ts_ms >= self.since_ms:
            return True
        self.skipped += 1
        self.skipped_heads[subject] = max(self.skipped_heads.get(subject, 0), env.channel_seq)
        return False

    def apply(self, subject, stream_seq, data, log_seq=None):
        env = events_pb2.Envelope()
        try:
            env.ParseFromString(data)
        except DecodeError:
            env = None
        if not self.keep(subject, env):
            return
        self.events += 1
        if self.first_stream_seq is None:
            self.first_stream_seq = stream_seq
            self.first_log_seq = stream_seq if log_seq is None else log_seq
        if env is None:
            # Quarantined: part of neither channel_seq nor the chain.
            self.undecodable += 1
            self.undecodable_subjects.add(subject)
            return
        self.check_dense(subject, stream_seq, env.channel_seq)
        self.check_chain(subject, stream_seq, env, hashlib.sha256(data).digest())
        kind = env.WhichOneof("body")
        parts = subject.split(".")
        cid = parts[3] if len(parts) == 4 and parts[2] == "ch" else None
        if cid is not None:
            ch = self.channel(cid)
            ch["events"] += 1
            ch["last_channel_seq"] = max(ch["last_channel_seq"], env.channel_seq)
        if kind is None:
            # A oneof case newer than this code's events_pb2: skip it.
            self.unknown += 1
        elif kind == "channel_created":
            self.channel(env.channel_id)
        elif kind == "heads_checkpoint":
            if is_checkpoint(subject):
                self.check_checkpoint(subject, stream_seq, env.channel_seq, env.heads_checkpoint)
        elif cid is None:
            pass
        elif kind == "message_posted":
            p = env.message_posted
            if not p.thread_root_id or p.also_send_to_channel:
                ch["messages"] += 1
                self.listed[p.message_id] = [cid, False]
            else:
                ch["replies"] += 1
        elif kind == "message_deleted":
            m = self.listed.get(env.message_deleted.message_id)
            if m is not None and not m[1]:
                m[1] = True
                self.channel(m[0])["deleted"] += 1

    def check_dense(self, subject, stream_seq, seq):
        last = self.last_seq.get(subject)
        if last is None:
            expected = 1 if self.from_start else None
        else:
            expected = last + 1
        if expected is not None and seq != expected:
            self.gaps.append({"subject": subject, "expected": expected, "got": seq, "stream_seq": stream_seq})
        self.last_seq[subject] = seq if last is None else max(last, seq)

    def check_chain(self, subject, stream_seq, env, digest):
        """`prev_digest` is the SHA-256 of the previous envelope's stored
        payload on the subject, as `switchboard verify-log` checks it
        (streams/src/chain.rs). Replaying from a time or a sequence, the
        first event seen on a subject is the chain's start: its
        `prev_digest` names an event not delivered and cannot be checked."""
        tip = self.tips.get(subject)
        chained = len(env.prev_digest) > 0
        problem = None
        if tip is None:
            if not self.from_start:
                self.chain["bases"] += 1
            elif chained:
                problem = "the subject's first event names a previous event (removed before it?)"
        elif not chained:
            if tip[3]:
                problem = "no prev_digest after chained events (forged?)"
            else:
                self.chain["unchained"] += 1
        elif env.prev_digest != tip[1]:
            problem = (f"prev_digest does not match the previous event (stream seq {tip[2]}): "
                       "forged, or an event was removed or inserted")
        else:
            self.chain["checked"] += 1
        if problem is not None:
            self.chain["findings"].append({"subject": subject, "channel_seq": env.channel_seq,
                                           "stream_seq": stream_seq, "problem": problem})
        self.tips[subject] = (env.channel_seq, digest, stream_seq, chained or (tip is not None and tip[3]))
        self.seen.setdefault(subject, {})[env.channel_seq] = digest
        self.base.setdefault(subject, env.channel_seq)

    def check_checkpoint(self, subject, stream_seq, channel_seq, cp):
        """The signature verifies with a trusted key (any of them; with
        none, the checkpoint's own), and each head it names that this
        replay covers is the event seen at that (subject, channel_seq):
        same digest, and still in the log."""
        self.checkpoints["read"] += 1
        text = canonical(cp.heads)
        keys = self.keys
        if not keys:
            try:
                keys = [Ed25519PublicKey.from_public_bytes(bytes(cp.public_key))]
            except ValueError:
                keys = []
        findings = self.checkpoints["findings"]
        if not any(signature_ok(k, bytes(cp.signature), text) for k in keys):
            findings.append({"subject": subject, "channel_seq": channel_seq, "stream_seq": stream_seq,
                             "kind": "signature",
                             "problem": "a checkpoint whose signature does not verify (forged)"})
            return
        self.checkpoints["verified"] += 1
        for h in cp.heads:
            seen = self.seen.get(h.subject)
            digest = seen.get(h.channel_seq) if seen is not None else None
            kind = problem = None
            if digest is not None:
                if digest != h.digest:
                    kind = "rewritten"
                    problem = (f"differs from the head the checkpoint at stream seq {stream_seq} "
                               f"signed: rewritten")
            elif self.covers(h):
                last = self.tips[h.subject][0] if h.subject in self.tips else 0
                kind = "removed"
                problem = (f"the checkpoint at stream seq {stream_seq} names this head, which the log "
                           f"no longer holds: events removed (the subject now ends at channel_seq {last})")
            if problem is None and digest is None:
                self.checkpoints["heads_unchecked"] += 1
            elif problem is None:
                self.checkpoints["heads_checked"] += 1
            else:
                findings.append({"subject": h.subject, "channel_seq": h.channel_seq,
                                 "stream_seq": h.stream_seq, "kind": kind, "problem": problem})

    def covers(self, head):
        """True when this replay should have delivered `head` (it comes
        before its checkpoint in stream order): from the start always; from
        a time or a sequence when the subject's first event seen is at or
        before it, or when nothing of the subject was seen though the head's
        stream seq (the log's) is within the replay; never a head skipped as
        before --since."""
        if self.from_start:
            return True
        if head.channel_seq <= self.skipped_heads.get(head.subject, 0):
            return False
        base = self.base.get(head.subject)
        if base is not None:
            return head.channel_seq >= base
        return (self.first_log_seq is not None and head.stream_seq >= self.first_log_seq
                and head.subject not in self.undecodable_subjects)

    def exit_status(self):
        if self.checkpoints["findings"]:
            if any(f["kind"] == "signature" for f in self.checkpoints["findings"]):
                return EXIT_CHECKPOINT_SIGNATURE
            return EXIT_CHECKPOINT_HEAD
        if self.chain["findings"]:
            return EXIT_CHAIN
        if self.gaps:
            return EXIT_GAP
        return 0

    def report(self, **extra):
        for ch in self.channels.values():
            ch["live"] = ch["messages"] - ch["deleted"]
        out = dict(extra)
        out.update({
            "events": self.events,
            "unknown": self.unknown,
            "undecodable": self.undecodable,
            "channels": dict(sorted(self.channels.items())),
            "gaps": self.gaps,
            "chain": self.chain,
            "checkpoints": self.checkpoints,
        })
        return out


def consumer_config(**start):
    return api.ConsumerConfig(
        ack_policy=api.AckPolicy.NONE,
        mem_storage=True,
        num_replicas=1,
        inactive_threshold=30.0,
        **start,
    )


async def consume(js, args, cfg, fold):
    """Folds events from one consumer; True when the replay is complete,
    False when a delivery was missed (the caller starts over from the last
    one folded)."""
    # An ephemeral pull consumer, filtered to the workspace, no acks, in
    # memory, gone by itself 30 s after its last fetch. nats-py names it (a
    # NUID), so the create request's subject carries the filter:
    # $JS.API.CONSUMER.CREATE.<stream>.<name>.sb.<W>.>
    sub = await js.pull_subscribe(f"sb.{args.workspace}.>", stream=args.stream, config=cfg)
    try:
        # The workspace's events from the start position as of now: the
        # replay stops after them (bounded while writers go on). No stream
        # info: a replay credential may not read the stream's state.
        info = await sub.consumer_info()
        remaining = info.num_pending
        if remaining == 0:
            return True  # nothing of the workspace from there on
        expected = 1
        while True:
            for msg in await sub.fetch(batch=1000, timeout=args.idle_timeout):
                md = msg.metadata
                if md.sequence.consumer != expected:
                    return False
                expected += 1
                fold.apply(msg.subject, md.sequence.stream, msg.data, log_seq(msg.headers))
                fold.stream_seq = md.sequence.stream
                remaining -= 1
                if remaining <= 0 or md.num_pending == 0:
                    return True
    finally:
        await sub.unsubscribe()


def log_seq(headers):
    """The log's sequence of a message of a replay stream (a sourced copy):
    the second field of its Nats-Stream-Source header; None on the log."""
    source = (headers or {}).get("Nats-Stream-Source")
    fields = source.split(" ") if source else []
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None


def envelope_ts(data):
    """An envelope's ts_ms; None for a payload that is no envelope."""
    env = events_pb2.Envelope()
    try:
        env.ParseFromString(data or b"")
    except DecodeError:
        return None
    return env.ts_ms


async def find_start(js, args, since_ms):
    """Where a replay --since starts: the lowest stream sequence from which
    the workspace's next event has an envelope ts_ms at or after
    `since - --since-margin`, found by a binary search over the stream's
    sequence range (its info) with gets of the next sb.<W>.> message at or
    after a sequence (direct gets when the stream allows them, else
    message gets). The stream's stored times play no part. ts_ms is only
    roughly ordered across subjects: with every event stored less than
    the margin out of order, no event at or after `since` is before the
    start found (a payload that is no envelope counts as at or after)."""
    info = await js.stream_info(args.stream)
    direct = bool(info.config.allow_direct)
    target = since_ms - int(args.since_margin * 1000)
    subject = f"sb.{args.workspace}.>"
    lo, hi = max(info.state.first_seq or 1, 1), (info.state.last_seq or 0) + 1
    probes = 0
    while lo < hi:
        mid = (lo + hi) // 2
        probes += 1
        try:
            m = await js.get_msg(args.stream, seq=mid, subject=subject, next=True, direct=direct)
        except NotFoundError:
            m = None  # nothing of the workspace at or after mid
        ts = envelope_ts(m.data) if m is not None else None
        if m is None or ts is None or ts >= target:
            hi = mid
        else:
            lo = m.seq + 1  # every position up to m's is before the target
    return lo, {"deliver_policy": "by_start_sequence", "since": args.since, "start_seq": lo,
                "found_by": "envelope ts_ms (binary search, " + ("direct gets" if direct else "message gets") + ")",
                "margin_secs": args.since_margin, "probes": probes}


async def run(args):
    nc = await nats.connect(args.nats, connect_timeout=5, max_reconnect_attempts=10,
                             inbox_prefix=args.inbox_prefix)
    try:
        js = nc.jetstream()
        since_ms = None
        if args.since:
            since_ms = int(parse_time(args.since).timestamp() * 1000)
            seq, frm = await find_start(js, args, since_ms)
            start = {"deliver_policy": api.DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": seq}
        elif args.start_seq:
            start = {"deliver_policy": api.DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": args.start_seq}
            frm = {"deliver_policy": "by_start_sequence", "start_seq": args.start_seq}
        else:
            start = {"deliver_policy": api.DeliverPolicy.ALL}
            frm = {"deliver_policy": "all"}
        fold = Replay(from_start=frm["deliver_policy"] == "all", keys=args.keys, since_ms=since_ms)
        began = time.monotonic()
        done = False
        while not done:
            if fold.stream_seq > 0:
                # A delivery was lost (a reconnect, say): the ordered-consumer
                # discipline, by hand: a new consumer from the next stream
                # sequence (the old one expires by itself).
                start = {"deliver_policy": api.DeliverPolicy.BY_START_SEQUENCE,
                         "opt_start_seq": fold.stream_seq + 1}
            done = await consume(js, args, consumer_config(**start), fold)
        elapsed = time.monotonic() - began
        if since_ms is not None:
            frm["skipped"] = fold.skipped
        return fold, fold.report(workspace=args.workspace, stream=args.stream,
                                 start=frm, replay_secs=round(elapsed, 6))
    finally:
        await nc.close()


def say(line):
    print(f"replay.py: {line}", file=sys.stderr)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.since:
            parse_time(args.since)
    except ValueError as e:
        sys.exit(f"replay.py: {e}")
    fold, out = asyncio.run(run(args))
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    for g in out["gaps"]:
        say(f"{g['subject']} stream seq {g['stream_seq']}: channel_seq {g['got']}, expected {g['expected']} (gap)")
    for f in out["chain"]["findings"] + out["checkpoints"]["findings"]:
        say(f"{f['subject']} channel_seq {f['channel_seq']} (stream seq {f['stream_seq']}): {f['problem']}")
    if out["chain"]["bases"]:
        say(f"started mid-stream: the first event seen on each of {out['chain']['bases']} subject(s) "
            "starts its hash chain (its prev_digest names an event not replayed and is not checked)")
    if out["checkpoints"]["read"] and not fold.keys:
        say("no --public-key: checkpoints were checked against the key each carries, which proves nothing")
    return fold.exit_status()


if __name__ == "__main__":
    sys.exit(main())
