//! `serve --config <file.toml>`: settings from a TOML file, layered under
//! the command line and the environment. Precedence, highest first:
//! flags > environment > file > defaults.
//!
//! The file is a flat table whose keys are `serve`'s long flag names
//! (`listen`, `heartbeat-ms`, `limit-posts`, …; `_` may stand for `-`).
//! clap already gives flags precedence over the environment and both over
//! defaults; the file's layer is added by re-parsing with the file's
//! values appended as flags **only for the settings clap took from their
//! defaults**, so a flag or an environment variable always wins. An
//! unknown key, or a value that is not a string, number or boolean, is an
//! error naming it — a typo never silently leaves a default in force.
//!
//! [`effective`] describes the settings in force, each with where it came
//! from, with secrets (tokens, passwords, keys, credentials in URLs)
//! redacted; `serve` logs it at start.

use anyhow::{bail, Context, Result};
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::Path;

/// The `serve` arguments with the file's settings added; and the ids of
/// the settings that came from the file.
pub fn with_file(
    cli: &Command,
    argv: &[OsString],
    file: &Path,
) -> Result<(Vec<OsString>, BTreeSet<String>)> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let table: toml::Table = toml::from_str(&text)
        .with_context(|| format!("{} is not a valid TOML table", file.display()))?;
    let serve = cli
        .find_subcommand("serve")
        .context("no serve subcommand")?;
    let matches = cli.clone().try_get_matches_from(argv)?;
    let (_, serve_matches) = matches.subcommand().context("no subcommand given")?;
    let mut out = argv.to_vec();
    let mut from_file = BTreeSet::new();
    for (key, value) in &table {
        let long = key.replace('_', "-");
        let Some(arg) = serve
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()) && long != "config")
        else {
            bail!(
                "{}: unknown setting `{key}` (keys are serve's flag names, e.g. listen, limit-posts)",
                file.display()
            );
        };
        let id = arg.get_id().as_str();
        let source = serve_matches.value_source(id);
        if !matches!(source, None | Some(ValueSource::DefaultValue)) {
            continue; // a flag or the environment set it: they win
        }
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => bail!(
                "{}: `{key}` must be a string, number or boolean",
                file.display()
            ),
        };
        match arg.get_action() {
            ArgAction::SetTrue => {
                if text == "true" {
                    out.push(format!("--{long}").into());
                } else if text != "false" {
                    bail!("{}: `{key}` must be true or false", file.display());
                }
            }
            _ => out.push(format!("--{long}={text}").into()),
        }
        from_file.insert(id.to_string());
    }
    Ok((out, from_file))
}

/// Whether a setting's value is a secret as a whole.
fn is_secret(id: &str) -> bool {
    ["token", "secret", "password", "key"]
        .iter()
        .any(|w| id.contains(w))
}

/// URLs with their user and password (`scheme://user:pass@host`, or
/// `user:pass@host` without a scheme) hidden; a comma-separated list (the
/// NATS servers) URL by URL.
pub fn redact_userinfo(value: &str) -> String {
    value
        .split(',')
        .map(|url| {
            let (scheme, rest) = match url.split_once("://") {
                Some((s, r)) => (Some(s), r),
                None => (None, url),
            };
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => match scheme {
                    Some(s) => format!("{s}://***@{}", &rest[at + 1..]),
                    None => format!("***@{}", &rest[at + 1..]),
                },
                None => url.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// One line per setting in force: `name = value (source)`, secrets
/// redacted, and whether the operator token came from the environment.
pub fn effective(serve: &Command, matches: &ArgMatches, from_file: &BTreeSet<String>) -> String {
    let mut lines = Vec::new();
    for arg in serve.get_arguments() {
        let id = arg.get_id().as_str();
        if matches!(id, "help" | "version") {
            continue;
        }
        let source = match matches.value_source(id) {
            _ if from_file.contains(id) => "file",
            Some(ValueSource::CommandLine) => "flag",
            Some(ValueSource::EnvVariable) => "env",
            Some(ValueSource::DefaultValue) => "default",
            _ => "unset",
        };
        let raw: Vec<String> = matches
            .get_raw(id)
            .map(|vs| vs.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let value = if raw.is_empty() {
            match arg.get_action() {
                ArgAction::SetTrue => "false".to_string(),
                _ => "-".to_string(),
            }
        } else if is_secret(id) {
            "<redacted>".to_string()
        } else {
            raw.iter()
                .map(|v| redact_userinfo(v))
                .collect::<Vec<_>>()
                .join(",")
        };
        lines.push(format!("{id} = {value} ({source})"));
    }
    let admin = match std::env::var("SWITCHBOARD_ADMIN_TOKEN") {
        Ok(t) if !t.trim().is_empty() => "<redacted> (env)",
        _ => "generated or kept in the data dir",
    };
    lines.push(format!("admin_token = {admin}"));
    lines.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_hidden() {
        assert_eq!(
            redact_userinfo("nats://app:s3cret@nats.internal:4222"),
            "nats://***@nats.internal:4222"
        );
        assert_eq!(
            redact_userinfo("http://u:p@os:9200/x@y"),
            "http://***@os:9200/x@y"
        );
        assert_eq!(redact_userinfo("http://os:9200"), "http://os:9200");
        assert_eq!(redact_userinfo("127.0.0.1:8080"), "127.0.0.1:8080");
        // Every URL of a server list, and userinfo without a scheme.
        assert_eq!(
            redact_userinfo("nats://u:p@a:4222,nats://u:p@b:4222"),
            "nats://***@a:4222,nats://***@b:4222"
        );
        assert_eq!(redact_userinfo("u:p@host:4222"), "***@host:4222");
        assert!(is_secret("admin_token") && is_secret("encryption_key_file"));
        assert!(!is_secret("listen"));
    }
}
