//! Accounts and sessions: bearer tokens (issue, revoke, sign out
//! everywhere), user deactivation and reactivation, role changes and
//! passwords. Every decision here is appended to the workspace subject, so
//! it is made against the same head as every other account change.
//!
//! Invariants kept:
//! - a workspace keeps at least one active admin: the last one can be
//!   neither demoted nor deactivated;
//! - a deactivated user gets no new token and no new password;
//! - a token is revoked by its owner or by an admin of its workspace; to
//!   anyone else (another user, another workspace) it does not exist.

use crate::authz::Caller;
use crate::events::{
    Body, PasswordSet, Role, SessionsRevoked, TokenIssued, TokenKind, TokenRevoked,
    UserDeactivated, UserReactivated, UserRoleSet,
};
use crate::ids::{TokenId, UserId, WorkspaceId};
use crate::validate::DisplayName;
use crate::DomainError;

/// What the decisions need to know about the user a command is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: UserId,
    pub workspace_id: WorkspaceId,
    pub admin: bool,
    pub deactivated: bool,
}

/// The target user as the read model has it (`None`: no such user), and
/// how many active admins the workspace has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    pub target: Option<Account>,
    pub active_admins: u64,
}

impl AccountState {
    /// The target, if it is a user of the caller's workspace (another
    /// workspace's user is `NotFound` like an unknown id).
    fn target_in(&self, caller: &Caller) -> Result<&Account, DomainError> {
        match &self.target {
            Some(a) if a.workspace_id == caller.workspace_id => Ok(a),
            _ => Err(DomainError::NotFound("user")),
        }
    }

    /// The target, for a command only workspace admins may give.
    fn target_for_admin(&self, caller: &Caller, what: &str) -> Result<&Account, DomainError> {
        let target = self.target_in(caller)?;
        if !caller.admin {
            return Err(DomainError::Forbidden(format!(
                "only workspace admins may {what}"
            )));
        }
        Ok(target)
    }

    /// Whether `target` is the only active admin left.
    fn last_admin(&self, target: &Account) -> bool {
        target.admin && !target.deactivated && self.active_admins <= 1
    }
}

/// `POST /v1/tokens`: a new token for `for_user` (the caller itself, or,
/// for a workspace admin, any active user of its workspace).
#[derive(Debug, Clone)]
pub struct IssueToken {
    /// Fresh id (the caller's clock and randomness).
    pub token_id: TokenId,
    pub name: DisplayName,
    /// Unix ms; `None`: never expires.
    pub expires_at_ms: Option<i64>,
    pub kind: TokenKind,
}

/// A password as a user typed it: 8 to 256 characters. Never printed
/// (its `Debug` is redacted) and never logged; only its argon2id hash is
/// kept, outside the log.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn parse(s: &str) -> Result<Password, DomainError> {
        let n = s.chars().count();
        if !(8..=256).contains(&n) {
            return Err(DomainError::invalid("password must be 8 to 256 characters"));
        }
        Ok(Password(s.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(…)")
    }
}

/// `expires_at` of a token: an RFC 3339 timestamp with an offset, as unix
/// milliseconds.
pub fn parse_expires_at(s: &str) -> Result<i64, DomainError> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            DomainError::invalid(
                "expires_at must be an RFC 3339 timestamp (2026-12-31T00:00:00Z) or null",
            )
        })
}

/// Decides a new token for `state.target`. `now_ms` is the caller's clock
/// (an expiry must lie in the future).
pub fn decide_issue_token(
    caller: &Caller,
    state: &AccountState,
    cmd: &IssueToken,
    now_ms: i64,
) -> Result<Body, DomainError> {
    let target = state.target_in(caller)?;
    if target.id != caller.user_id && !caller.admin {
        return Err(DomainError::Forbidden(
            "only workspace admins may issue tokens for other users".into(),
        ));
    }
    if target.deactivated {
        return Err(DomainError::Conflict(
            "the user is deactivated: reactivate it first".into(),
        ));
    }
    if let Some(at) = cmd.expires_at_ms {
        if at <= now_ms {
            return Err(DomainError::invalid("expires_at must be in the future"));
        }
    }
    Ok(Body::TokenIssued(TokenIssued {
        token_id: cmd.token_id.as_str().to_string(),
        user_id: target.id.as_str().to_string(),
        name: cmd.name.as_str().to_string(),
        expires_at_ms: cmd.expires_at_ms.unwrap_or(0),
        kind: cmd.kind as i32,
        // The verifier is a TokenVerifier the caller appends first, off
        // the replayable subjects (see the .proto).
        ..Default::default()
    }))
}

/// What the decisions need to know about a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFacts {
    pub id: TokenId,
    pub user_id: UserId,
    pub workspace_id: WorkspaceId,
}

/// `DELETE /v1/tokens/{id}`: by its owner or an admin of its workspace.
/// A token the caller may not revoke answers exactly like one that does
/// not exist (revoked already, another user's, another workspace's).
pub fn decide_revoke_token(
    caller: &Caller,
    token: Option<&TokenFacts>,
) -> Result<Body, DomainError> {
    match token {
        Some(t)
            if t.workspace_id == caller.workspace_id
                && (t.user_id == caller.user_id || caller.admin) =>
        {
            Ok(Body::TokenRevoked(TokenRevoked {
                token_id: t.id.as_str().to_string(),
                user_id: t.user_id.as_str().to_string(),
            }))
        }
        _ => Err(DomainError::NotFound("token")),
    }
}

/// "Sign out everywhere": the caller's session tokens are revoked.
pub fn decide_revoke_sessions(caller: &Caller) -> Body {
    Body::SessionsRevoked(SessionsRevoked {
        user_id: caller.user_id.as_str().to_string(),
    })
}

/// Deactivates the target (workspace admins). `Ok(None)`: it already is.
pub fn decide_deactivate(
    caller: &Caller,
    state: &AccountState,
) -> Result<Option<Body>, DomainError> {
    let target = state.target_for_admin(caller, "deactivate users")?;
    if target.deactivated {
        return Ok(None);
    }
    if state.last_admin(target) {
        return Err(DomainError::Conflict(
            "the workspace's last admin cannot be deactivated: make another user admin first"
                .into(),
        ));
    }
    Ok(Some(Body::UserDeactivated(UserDeactivated {
        user_id: target.id.as_str().to_string(),
    })))
}

/// Reactivates the target (workspace admins). `Ok(None)`: it is active.
pub fn decide_reactivate(
    caller: &Caller,
    state: &AccountState,
) -> Result<Option<Body>, DomainError> {
    let target = state.target_for_admin(caller, "reactivate users")?;
    if !target.deactivated {
        return Ok(None);
    }
    Ok(Some(Body::UserReactivated(UserReactivated {
        user_id: target.id.as_str().to_string(),
    })))
}

/// Sets the target's role (workspace admins). `Ok(None)`: it has it.
pub fn decide_set_role(
    caller: &Caller,
    state: &AccountState,
    role: Role,
) -> Result<Option<Body>, DomainError> {
    let target = state.target_for_admin(caller, "change roles")?;
    let admin = role == Role::Admin;
    if target.admin == admin {
        return Ok(None);
    }
    if !admin && state.last_admin(target) {
        return Err(DomainError::Conflict(
            "the workspace's last admin cannot be demoted: make another user admin first".into(),
        ));
    }
    Ok(Some(Body::UserRoleSet(UserRoleSet {
        user_id: target.id.as_str().to_string(),
        role: role as i32,
    })))
}

/// Records that the target's password was set: by the user itself or by
/// a workspace admin (the hash is stored outside the log by the caller).
pub fn decide_set_password(caller: &Caller, state: &AccountState) -> Result<Body, DomainError> {
    let target = state.target_in(caller)?;
    if target.id != caller.user_id && !caller.admin {
        return Err(DomainError::Forbidden(
            "only workspace admins may set another user's password".into(),
        ));
    }
    if target.deactivated {
        return Err(DomainError::Conflict(
            "the user is deactivated: reactivate it first".into(),
        ));
    }
    Ok(Body::PasswordSet(PasswordSet {
        user_id: target.id.as_str().to_string(),
    }))
}

/// The password set through an invite link: the invite names the user, so
/// there is no caller; only an active user can accept one.
pub fn decide_accept_invite(state: &AccountState) -> Result<Body, DomainError> {
    match &state.target {
        Some(t) if !t.deactivated => Ok(Body::PasswordSet(PasswordSet {
            user_id: t.id.as_str().to_string(),
        })),
        Some(_) => Err(DomainError::Conflict("the user is deactivated".into())),
        None => Err(DomainError::NotFound("invite")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    fn account(id: &str, admin: bool) -> Account {
        Account {
            id: id.into(),
            workspace_id: "W1".into(),
            admin,
            deactivated: false,
        }
    }

    fn st(target: Account, active_admins: u64) -> AccountState {
        AccountState {
            target: Some(target),
            active_admins,
        }
    }

    fn issue(expires: Option<i64>) -> IssueToken {
        IssueToken {
            token_id: "T1".into(),
            name: DisplayName::parse("name", "laptop").expect("valid"),
            expires_at_ms: expires,
            kind: TokenKind::Api,
        }
    }

    fn other_ws(mut a: Account) -> Account {
        a.workspace_id = "W2".into();
        a
    }

    fn off(mut a: Account) -> Account {
        a.deactivated = true;
        a
    }

    #[test]
    fn tokens_for_oneself_or_by_admins() {
        let own = decide_issue_token(
            &caller("bob"),
            &st(account("bob", false), 1),
            &issue(Some(10)),
            5,
        );
        assert!(matches!(own, Ok(Body::TokenIssued(t))
            if t.user_id == "bob" && t.expires_at_ms == 10 && t.kind() == TokenKind::Api));
        assert!(decide_issue_token(
            &admin("root"),
            &st(account("bob", false), 1),
            &issue(None),
            5
        )
        .is_ok());
    }

    #[test]
    fn token_refusals() {
        let bob = st(account("bob", false), 1);
        assert!(matches!(
            decide_issue_token(&caller("eve"), &bob, &issue(None), 5),
            Err(DomainError::Forbidden(_))
        ));
        assert_eq!(
            decide_issue_token(
                &admin("root"),
                &st(other_ws(account("bob", false)), 1),
                &issue(None),
                5
            ),
            Err(DomainError::NotFound("user"))
        );
        let none = AccountState {
            target: None,
            active_admins: 1,
        };
        assert_eq!(
            decide_issue_token(&admin("root"), &none, &issue(None), 5),
            Err(DomainError::NotFound("user"))
        );
        assert!(matches!(
            decide_issue_token(
                &admin("root"),
                &st(off(account("bob", false)), 1),
                &issue(None),
                5
            ),
            Err(DomainError::Conflict(_))
        ));
        for past in [5, 4, -1] {
            assert!(matches!(
                decide_issue_token(&caller("bob"), &bob, &issue(Some(past)), 5),
                Err(DomainError::Invalid(_))
            ));
        }
    }

    #[test]
    fn revocation_by_owner_or_admin_only() {
        let t = TokenFacts {
            id: "T1".into(),
            user_id: "bob".into(),
            workspace_id: "W1".into(),
        };
        assert!(matches!(decide_revoke_token(&caller("bob"), Some(&t)),
            Ok(Body::TokenRevoked(r)) if r.token_id == "T1" && r.user_id == "bob"));
        assert!(decide_revoke_token(&admin("root"), Some(&t)).is_ok());
        for (who, token) in [(caller("eve"), Some(&t)), (caller("bob"), None)] {
            assert_eq!(
                decide_revoke_token(&who, token),
                Err(DomainError::NotFound("token"))
            );
        }
        let foreign = TokenFacts {
            workspace_id: "W2".into(),
            ..t.clone()
        };
        assert_eq!(
            decide_revoke_token(&admin("root"), Some(&foreign)),
            Err(DomainError::NotFound("token"))
        );
        assert!(
            matches!(decide_revoke_sessions(&caller("bob")), Body::SessionsRevoked(s) if s.user_id == "bob")
        );
    }

    #[test]
    fn deactivation_and_reactivation() {
        let bob = st(account("bob", false), 1);
        assert!(matches!(decide_deactivate(&admin("root"), &bob),
            Ok(Some(Body::UserDeactivated(d))) if d.user_id == "bob"));
        assert_eq!(
            decide_deactivate(&admin("root"), &st(off(account("bob", false)), 1)),
            Ok(None)
        );
        assert!(matches!(
            decide_deactivate(&caller("eve"), &bob),
            Err(DomainError::Forbidden(_))
        ));
        assert_eq!(
            decide_deactivate(&admin("root"), &st(other_ws(account("bob", false)), 1)),
            Err(DomainError::NotFound("user"))
        );
        // The last active admin stays; one of two may go (even itself).
        assert!(matches!(
            decide_deactivate(&admin("root"), &st(account("root", true), 1)),
            Err(DomainError::Conflict(_))
        ));
        assert!(decide_deactivate(&admin("root"), &st(account("root", true), 2)).is_ok());
        assert!(
            matches!(decide_reactivate(&admin("root"), &st(off(account("bob", false)), 1)),
            Ok(Some(Body::UserReactivated(r))) if r.user_id == "bob")
        );
        assert_eq!(decide_reactivate(&admin("root"), &bob), Ok(None));
        assert!(matches!(
            decide_reactivate(&caller("eve"), &st(off(account("bob", false)), 1)),
            Err(DomainError::Forbidden(_))
        ));
    }

    #[test]
    fn roles() {
        assert!(
            matches!(decide_set_role(&admin("root"), &st(account("bob", false), 1), Role::Admin),
            Ok(Some(Body::UserRoleSet(r))) if r.user_id == "bob" && r.role() == Role::Admin)
        );
        assert_eq!(
            decide_set_role(&admin("root"), &st(account("bob", false), 1), Role::Member),
            Ok(None)
        );
        assert!(matches!(
            decide_set_role(&caller("bob"), &st(account("bob", false), 1), Role::Admin),
            Err(DomainError::Forbidden(_))
        ));
        assert!(matches!(
            decide_set_role(&admin("root"), &st(account("root", true), 1), Role::Member),
            Err(DomainError::Conflict(_))
        ));
        assert!(
            decide_set_role(&admin("root"), &st(account("ada", true), 2), Role::Member).is_ok()
        );
        // A deactivated admin is not counted, and may be demoted.
        assert!(decide_set_role(
            &admin("root"),
            &st(off(account("ada", true)), 1),
            Role::Member
        )
        .is_ok());
    }

    #[test]
    fn password_rules() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"x".repeat(257)).is_err());
        let p = Password::parse("correct horse").expect("valid");
        assert_eq!(p.expose(), "correct horse");
        assert!(!format!("{p:?}").contains("horse"));
    }

    #[test]
    fn passwords() {
        let bob = st(account("bob", false), 1);
        assert!(
            matches!(decide_set_password(&caller("bob"), &bob), Ok(Body::PasswordSet(p)) if p.user_id == "bob")
        );
        assert!(decide_set_password(&admin("root"), &bob).is_ok());
        assert!(matches!(
            decide_set_password(&caller("eve"), &bob),
            Err(DomainError::Forbidden(_))
        ));
        assert!(matches!(
            decide_set_password(&admin("root"), &st(off(account("bob", false)), 1)),
            Err(DomainError::Conflict(_))
        ));
        assert!(decide_accept_invite(&bob).is_ok());
        assert!(decide_accept_invite(&st(off(account("bob", false)), 1)).is_err());
    }
}
