//! Workspaces and users.

use crate::authz::Caller;
use crate::events::{Body, Role, UserAdded, WorkspaceCreated};
use crate::ids::{UserId, WorkspaceId};
use crate::validate::{DisplayName, Handle};
use crate::DomainError;

impl Role {
    /// Parses the API's role names.
    pub fn parse(s: &str) -> Result<Role, DomainError> {
        match s {
            "member" => Ok(Role::Member),
            "admin" => Ok(Role::Admin),
            _ => Err(DomainError::invalid("role must be \"member\" or \"admin\"")),
        }
    }
}

pub fn decide_create_workspace(name: &DisplayName) -> Body {
    Body::WorkspaceCreated(WorkspaceCreated {
        name: name.as_str().to_string(),
    })
}

#[derive(Debug, Clone)]
pub struct CreateUser {
    /// Fresh id (the caller's clock and randomness).
    pub user_id: UserId,
    pub handle: Handle,
    pub display_name: DisplayName,
    pub role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkspaceState {
    pub exists: bool,
    pub handle_taken: bool,
}

/// `by` is `None` for the server operator, else a user of some workspace:
/// only an admin of this workspace may add users to it.
pub fn decide_create_user(
    by: Option<&Caller>,
    workspace_id: &WorkspaceId,
    state: WorkspaceState,
    cmd: &CreateUser,
) -> Result<Body, DomainError> {
    if let Some(u) = by {
        if u.workspace_id != *workspace_id {
            return Err(DomainError::NotFound("workspace"));
        }
        if !u.admin {
            return Err(DomainError::Forbidden(
                "only workspace admins may add users".into(),
            ));
        }
    }
    if !state.exists {
        return Err(DomainError::NotFound("workspace"));
    }
    if state.handle_taken {
        return Err(DomainError::Conflict(format!(
            "handle {:?} is taken in this workspace",
            cmd.handle.as_str()
        )));
    }
    Ok(Body::UserAdded(UserAdded {
        user_id: cmd.user_id.as_str().to_string(),
        handle: cmd.handle.as_str().to_string(),
        display_name: cmd.display_name.as_str().to_string(),
        role: cmd.role as i32,
        // The initial token's verifier is a TokenVerifier the caller
        // appends first, off the replayable subjects (see the .proto).
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    fn cmd() -> CreateUser {
        CreateUser {
            user_id: UserId::from_trusted("U9".into()),
            handle: Handle::parse("dave").expect("valid"),
            display_name: DisplayName::parse("display_name", "Dave").expect("valid"),
            role: Role::Member,
        }
    }
    const FREE: WorkspaceState = WorkspaceState {
        exists: true,
        handle_taken: false,
    };

    #[test]
    fn operators_and_workspace_admins_add_users() {
        assert!(matches!(
            decide_create_user(None, &"W1".into(), FREE, &cmd()),
            Ok(Body::UserAdded(u)) if u.handle == "dave"
        ));
        assert!(decide_create_user(Some(&admin("root")), &"W1".into(), FREE, &cmd()).is_ok());
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            decide_create_user(Some(&caller("bob")), &"W1".into(), FREE, &cmd()),
            Err(DomainError::Forbidden(_))
        ));
        assert_eq!(
            decide_create_user(Some(&admin("root")), &"W2".into(), FREE, &cmd()),
            Err(DomainError::NotFound("workspace"))
        );
        let gone = WorkspaceState {
            exists: false,
            handle_taken: false,
        };
        assert_eq!(
            decide_create_user(None, &"W1".into(), gone, &cmd()),
            Err(DomainError::NotFound("workspace"))
        );
        let taken = WorkspaceState {
            exists: true,
            handle_taken: true,
        };
        assert!(matches!(
            decide_create_user(None, &"W1".into(), taken, &cmd()),
            Err(DomainError::Conflict(_))
        ));
        assert!(Role::parse("owner").is_err());
        assert_eq!(Role::parse("admin"), Ok(Role::Admin));
    }
}
