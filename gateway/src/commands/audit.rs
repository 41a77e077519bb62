//! Reading the audit log (`GET /v1/admin/audit`): workspace admins only,
//! re-checked against the ACL model at the time of the read (a session
//! cached before a deactivation or a demotion does not keep the right),
//! and only the caller's own workspace's entries.

use super::{Commands, ReadModel, UserCtx};
use crate::error::{ApiError, ApiResult};
use switchboard_projections::audit::{self, AuditEntry, AuditFilter};

impl Commands {
    /// At most `limit` entries of the caller's workspace matching
    /// `filter`, newest first. 401 for a caller deactivated (or gone) by
    /// now, 403 for one that is not a workspace admin (any more).
    pub async fn audit_page(
        &self,
        by: &UserCtx,
        model: &ReadModel,
        filter: AuditFilter,
        limit: u32,
    ) -> ApiResult<Vec<AuditEntry>> {
        self.fresh_reads().await?;
        let now = self
            .account_state(&by.caller.workspace_id, &by.caller.user_id)
            .await?;
        match now.target {
            Some(a) if !a.deactivated => {
                // In a read-only view `caller.admin` also holds the live
                // account's role (see `authenticate`).
                if !a.admin || !by.caller.admin {
                    return Err(ApiError::forbidden(
                        "only workspace admins may read the audit log",
                    ));
                }
            }
            _ => return Err(ApiError::unauthorized()),
        }
        // The audit model is read as far as it has folded: it does not
        // gate other reads, so it is not waited for beyond a short bound.
        let acked = self.log.last_acked();
        let _ = model
            .progress
            .wait_for(acked, std::time::Duration::from_secs(3))
            .await;
        let ws = by.caller.workspace_id.to_string();
        Ok(model
            .readers
            .read_page(move |c| audit::page(c, &ws, &filter, limit))
            .await?)
    }
}
