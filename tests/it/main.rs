//! Black-box tests: each test starts its own nats-server (free port, temp
//! store) and the real `switchboard` binary, and talks HTTP to it.

mod accounts;
mod audit;
mod bad_input;
mod bench;
mod chain_export;
mod concurrency;
mod config;
mod conversation;
mod decide_race;
mod faults;
mod files;
mod harness;
mod idempotency;
mod metrics;
mod notifications;
mod openapi;
mod outcome;
mod outsiders;
mod point_in_time;
mod push;
mod rate_limits;
mod reads;
mod realtime;
mod realtime_limits;
mod rebuild;
mod regressions;
mod replay;
mod replay_auth;
mod replay_examples;
mod search;
mod sessions;
mod shutdown;
mod tls;
mod unreads;
mod walkthrough;
