#!/usr/bin/env python3
"""Replays one Switchboard workspace from the log and prints per-channel
message counts as JSON (see docs/replay.md, "The examples").

Set up first with ./setup.sh (a virtualenv with pinned nats-py and
protobuf, and events_pb2.py generated from core/proto), then:

    .venv/bin/python replay.py --nats nats://user:pass@127.0.0.1:4222 --workspace W1
    .venv/bin/python replay.py --nats ... --workspace W1 --since 2026-11-28T12:00:00Z

The replay is bounded: it stops after the workspace's events pending when
its consumer was created (the consumer's info right after creation).
Needs only (no stream info): creating an
ephemeral pull consumer filtered to sb.<W>.>, and fetching its messages
(see docs/replay.md, "Permissions a replay needs").
"""

import argparse
import asyncio
import datetime
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

try:
    import nats
    from google.protobuf.message import DecodeError
    from nats.js import api
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
    start.add_argument("--since", help="start at the first event stored at or after this RFC 3339 time")
    start.add_argument("--start-seq", type=int, help="start at this stream sequence")
    p.add_argument("--idle-timeout", type=float, default=30.0,
                   help="fail when no event arrives for this many seconds (default 30)")
    return p.parse_args(argv)


def parse_time(s):
    # fromisoformat takes "Z" only from Python 3.11 on.
    t = datetime.datetime.fromisoformat(s[:-1] + "+00:00" if s[-1:] in ("Z", "z") else s)
    if t.tzinfo is None:
        raise ValueError(f"--since {s!r}: an RFC 3339 time needs an offset (Z or +hh:mm)")
    return t.astimezone(datetime.timezone.utc)


class Replay:
    """The fold: per-channel counts and the dense-sequence check."""

    def __init__(self, from_start):
        self.from_start = from_start
        self.events = 0
        # the stream sequence of the last event applied
        self.stream_seq = 0
        self.unknown = 0
        self.undecodable = 0
        self.channels = {}
        # subject -> the last channel_seq seen on it
        self.last_seq = {}
        self.gaps = []
        # message id -> (channel, deleted?) for messages the history lists
        self.listed = {}

    def channel(self, cid):
        return self.channels.setdefault(cid, {
            "messages": 0, "deleted": 0, "live": 0, "replies": 0,
            "events": 0, "last_channel_seq": 0,
        })

    def apply(self, subject, stream_seq, data):
        self.events += 1
        env = events_pb2.Envelope()
        try:
            env.ParseFromString(data)
        except DecodeError:
            self.undecodable += 1
            return
        self.check_dense(subject, stream_seq, env.channel_seq)
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
                fold.apply(msg.subject, md.sequence.stream, msg.data)
                fold.stream_seq = md.sequence.stream
                remaining -= 1
                if remaining <= 0 or md.num_pending == 0:
                    return True
    finally:
        await sub.unsubscribe()


async def run(args):
    nc = await nats.connect(args.nats, connect_timeout=5, max_reconnect_attempts=10,
                             inbox_prefix=args.inbox_prefix)
    try:
        js = nc.jetstream()
        if args.since:
            start = {"deliver_policy": api.DeliverPolicy.BY_START_TIME, "opt_start_time": parse_time(args.since)}
            frm = {"deliver_policy": "by_start_time", "since": args.since}
        elif args.start_seq:
            start = {"deliver_policy": api.DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": args.start_seq}
            frm = {"deliver_policy": "by_start_sequence", "start_seq": args.start_seq}
        else:
            start = {"deliver_policy": api.DeliverPolicy.ALL}
            frm = {"deliver_policy": "all"}
        fold = Replay(from_start=frm["deliver_policy"] == "all")
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
        return fold.report(workspace=args.workspace, stream=args.stream,
                           start=frm, replay_secs=round(elapsed, 6))
    finally:
        await nc.close()


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.since:
            parse_time(args.since)
    except ValueError as e:
        sys.exit(f"replay.py: {e}")
    out = asyncio.run(run(args))
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 3 if out["gaps"] else 0


if __name__ == "__main__":
    sys.exit(main())
