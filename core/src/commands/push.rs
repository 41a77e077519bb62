//! Push configuration: a workspace admin sets (or removes) the workspace's
//! push webhook. The event carries the URL only; the signing secret is kept
//! outside the log (replay consumers read the log).

use crate::authz::Caller;
use crate::events::{Body, PushConfigured};
use crate::ids::WorkspaceId;
use crate::push::PushUrl;
use crate::DomainError;

/// Sets the push webhook of `workspace_id` to `url` (`None` removes it);
/// `current` is the URL in force at the head appended after. Only an admin
/// of that workspace may; another workspace is `NotFound`. Setting the URL
/// in force (or removing none) is `Ok(None)`: nothing to append (a new
/// secret for the same URL is not an event: secrets are not logged).
pub fn decide_configure_push(
    caller: &Caller,
    workspace_id: &WorkspaceId,
    current: Option<&str>,
    url: Option<&PushUrl>,
) -> Result<Option<Body>, DomainError> {
    authorize_push_admin(caller, workspace_id)?;
    if current == url.map(PushUrl::as_str) {
        return Ok(None);
    }
    Ok(Some(Body::PushConfigured(PushConfigured {
        url: url.map(|u| u.as_str().to_string()).unwrap_or_default(),
    })))
}

/// Who may read or change a workspace's push settings (and its dead
/// letters): that workspace's admins.
pub fn authorize_push_admin(
    caller: &Caller,
    workspace_id: &WorkspaceId,
) -> Result<(), DomainError> {
    if caller.workspace_id != *workspace_id {
        return Err(DomainError::NotFound("workspace"));
    }
    if !caller.admin {
        return Err(DomainError::Forbidden(
            "only workspace admins may manage push delivery".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn admins_set_and_remove() {
        let url = PushUrl::parse("https://push.example.com/h").expect("url");
        assert!(matches!(
            decide_configure_push(&admin("root"), &"W1".into(), None, Some(&url)),
            Ok(Some(Body::PushConfigured(p))) if p.url == "https://push.example.com/h"
        ));
        assert!(matches!(
            decide_configure_push(&admin("root"), &"W1".into(), Some("https://old.example/"), None),
            Ok(Some(Body::PushConfigured(p))) if p.url.is_empty()
        ));
    }

    #[test]
    fn unchanged_appends_nothing() {
        let url = PushUrl::parse("https://push.example.com/h").expect("url");
        let w = "W1".into();
        let current = Some("https://push.example.com/h");
        assert_eq!(
            decide_configure_push(&admin("root"), &w, current, Some(&url)),
            Ok(None)
        );
        assert_eq!(
            decide_configure_push(&admin("root"), &w, None, None),
            Ok(None)
        );
    }

    #[test]
    fn refusals() {
        let url = PushUrl::parse("https://push.example.com/h").expect("url");
        assert!(matches!(
            decide_configure_push(&caller("bob"), &"W1".into(), None, Some(&url)),
            Err(DomainError::Forbidden(_))
        ));
        assert_eq!(
            decide_configure_push(&admin("root"), &"W2".into(), None, Some(&url)),
            Err(DomainError::NotFound("workspace"))
        );
        assert!(authorize_push_admin(&caller("bob"), &"W1".into()).is_err());
        assert_eq!(
            authorize_push_admin(&admin("root"), &"W2".into()),
            Err(DomainError::NotFound("workspace"))
        );
        assert!(authorize_push_admin(&admin("root"), &"W1".into()).is_ok());
    }
}
