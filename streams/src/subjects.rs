//! The subject scheme (DESIGN.md "The log"). Ids are validated subject
//! tokens (`switchboard_core::ids::is_token`), so these never widen.

/// Everything Switchboard appends lives under this prefix.
pub const ALL: &str = "sb.>";
/// Token verifiers (`TokenVerifier` events: the SHA-256 of a bearer
/// token) live outside `sb.>`, in the same stream so that the ACL fold sees
/// them in log order, but on subjects a replay credential (which may read
/// only `sb.<ws>.>`) cannot read, and that are not republished.
pub const VERIFIERS_ALL: &str = "sbv.>";

/// The subject of a workspace's token verifiers.
pub fn verifiers(ws: &str) -> String {
    format!("sbv.{ws}.tokens")
}

/// Stored events are republished here by the stream (RePublish), for
/// real-time fan-out of only what the stream accepted.
pub const REPUBLISH_DEST: &str = "dlv.sb.>";

pub fn channel(ws: &str, channel: &str) -> String {
    format!("sb.{ws}.ch.{channel}")
}

pub fn workspace(ws: &str) -> String {
    format!("sb.{ws}.ws")
}

pub fn user(ws: &str, user: &str) -> String {
    format!("sb.{ws}.user.{user}")
}

/// Every event of one workspace, for replay and export.
pub fn workspace_filter(ws: &str) -> String {
    format!("sb.{ws}.>")
}

/// True for a channel subject (`sb.<ws>.ch.<channel>`).
pub fn is_channel(subject: &str) -> bool {
    let mut parts = subject.split('.');
    matches!(
        (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next()
        ),
        (Some("sb"), Some(_), Some("ch"), Some(_), None)
    )
}

/// The user of a user subject (`sb.<ws>.user.<user>`), else `None`.
pub fn user_of(subject: &str) -> Option<&str> {
    let mut parts = subject.split('.');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("sb"), Some(_), Some("user"), Some(user), None) => Some(user),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn channel_subjects() {
        assert_eq!(super::channel("W1", "C1"), "sb.W1.ch.C1");
        assert!(super::is_channel("sb.W1.ch.C1"));
        assert!(!super::is_channel("sb.W1.ws"));
        assert!(!super::is_channel("sb.W1.user.U1"));
        assert!(!super::is_channel("sb.W1.ch.C1.x"));
        assert_eq!(super::user_of("sb.W1.user.U1"), Some("U1"));
        assert_eq!(super::user_of("sb.W1.ch.C1"), None);
        assert_eq!(super::user_of("sb.W1.user.U1.x"), None);
    }
}
