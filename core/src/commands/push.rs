//! Push configuration: a workspace admin sets (or removes) the workspace's
//! push webhook. The event carries the URL only; the signing secret is kept
//! outside the log (replay consumers read the log).

use crate::authz::Caller;
use crate::events::{Body, PushConfigured};
use crate::ids::WorkspaceId;
use crate::push::PushUrl;
use crate::DomainError;

/// Sets the push webhook of `workspace_id` to `url` (`None` removes it).
/// Only an admin of that workspace may; another workspace is `NotFound`.
pub fn decide_configure_push(
    caller: &Caller,
    workspace_id: &WorkspaceId,
    url: Option<&PushUrl>,
) -> Result<Body, DomainError> {
    authorize_push_admin(caller, workspace_id)?;
    Ok(Body::PushConfigured(PushConfigured {
        url: url.map(|u| u.as_str().to_string()).unwrap_or_default(),
    }))
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
            decide_configure_push(&admin("root"), &"W1".into(), Some(&url)),
            Ok(Body::PushConfigured(p)) if p.url == "https://push.example.com/h"
        ));
        assert!(matches!(
            decide_configure_push(&admin("root"), &"W1".into(), None),
            Ok(Body::PushConfigured(p)) if p.url.is_empty()
        ));
    }

    #[test]
    fn refusals() {
        let url = PushUrl::parse("https://push.example.com/h").expect("url");
        assert!(matches!(
            decide_configure_push(&caller("bob"), &"W1".into(), Some(&url)),
            Err(DomainError::Forbidden(_))
        ));
        assert_eq!(
            decide_configure_push(&admin("root"), &"W2".into(), Some(&url)),
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
