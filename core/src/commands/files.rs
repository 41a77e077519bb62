//! Files: recording an upload (its bytes are already in the files bucket)
//! and what a post may attach.

use super::{archived, ChannelState};
use crate::authz::Caller;
use crate::events::{Body, FileUploaded};
use crate::ids::{ChannelId, FileId, UserId};
use crate::DomainError;

/// Most files one message attaches.
pub const MAX_ATTACHMENTS: usize = 10;

/// An upload whose bytes are stored, to be recorded.
#[derive(Debug, Clone)]
pub struct UploadFile {
    pub file_id: FileId,
    /// 1 to 255 characters, no control characters.
    pub name: String,
    pub size: u64,
    pub content_type: String,
    pub sha256: String,
}

/// A file name from untrusted input: 1 to 255 characters, none a control
/// character or a path separator.
pub fn parse_name(raw: &str) -> Result<String, DomainError> {
    let n = raw.chars().count();
    if n == 0 || n > 255 || raw.chars().any(|c| c.is_control() || c == '/' || c == '\\') {
        return Err(DomainError::invalid(
            "name: 1 to 255 characters, no control characters or slashes",
        ));
    }
    Ok(raw.to_string())
}

/// Members upload into live channels.
pub fn decide_upload(
    caller: &Caller,
    state: &ChannelState,
    cmd: &UploadFile,
) -> Result<Body, DomainError> {
    let ch = state.visible_to(caller)?;
    if !state.caller_member {
        return Err(DomainError::NotAMember);
    }
    if ch.archived {
        return Err(archived());
    }
    Ok(Body::FileUploaded(FileUploaded {
        file_id: cmd.file_id.as_str().to_string(),
        name: cmd.name.clone(),
        size: cmd.size,
        content_type: cmd.content_type.clone(),
        sha256: cmd.sha256.clone(),
    }))
}

/// What a post needs to know about a file it attaches, as the history
/// model has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    pub id: FileId,
    pub channel_id: ChannelId,
    pub uploader_id: UserId,
    /// Attached to a message already.
    pub attached: bool,
    /// Deleted (expired unattached, or its message deleted).
    pub gone: bool,
}

/// What expiring an unattached upload needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryFacts {
    pub attached: bool,
    pub gone: bool,
    /// When it was uploaded (ms since the epoch).
    pub uploaded_ms: i64,
}

/// An upload no message attached within `ttl_ms` of its upload expires
/// (`Ok(None)`: nothing to do — attached, gone already, or not old enough).
pub fn decide_expiry(
    file_id: &FileId,
    facts: Option<&ExpiryFacts>,
    now_ms: i64,
    ttl_ms: i64,
) -> Option<Body> {
    let f = facts?;
    if f.attached || f.gone || now_ms.saturating_sub(f.uploaded_ms) < ttl_ms {
        return None;
    }
    Some(Body::FileExpired(crate::events::FileExpired {
        file_id: file_id.as_str().to_string(),
    }))
}

/// A post attaches at most [`MAX_ATTACHMENTS`] distinct files, each the
/// caller's own upload to this channel and not attached yet. Another
/// user's file, or one of another channel, is `NotFound` like a missing id.
pub fn check_attachments(
    caller: &Caller,
    channel: &ChannelId,
    wanted: &[FileId],
    found: &[FileFacts],
) -> Result<(), DomainError> {
    if wanted.len() > MAX_ATTACHMENTS {
        return Err(DomainError::invalid(format!(
            "attachment_ids: at most {MAX_ATTACHMENTS} files"
        )));
    }
    for (i, id) in wanted.iter().enumerate() {
        if wanted[..i].contains(id) {
            return Err(DomainError::invalid(
                "attachment_ids: a file is listed twice",
            ));
        }
        match found.iter().find(|f| &f.id == id && !f.gone) {
            Some(f) if &f.channel_id == channel && f.uploader_id == caller.user_id => {
                if f.attached {
                    return Err(DomainError::Conflict(format!(
                        "file {id} is attached to a message already"
                    )));
                }
            }
            _ => return Err(DomainError::NotFound("file")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    fn upload() -> UploadFile {
        UploadFile {
            file_id: "F1".into(),
            name: "a.txt".into(),
            size: 3,
            content_type: "text/plain".into(),
            sha256: "00".into(),
        }
    }

    #[test]
    fn members_upload_into_live_channels() {
        assert!(matches!(
            decide_upload(&caller("bob"), &state(facts(false), true), &upload()),
            Ok(Body::FileUploaded(f)) if f.file_id == "F1" && f.size == 3
        ));
    }

    #[test]
    fn upload_refusals() {
        let bob = caller("bob");
        let cases = [
            (state(facts(false), false), DomainError::NotAMember),
            (state(facts(true), false), DomainError::NotFound("channel")),
            (
                state(other_workspace(facts(false)), true),
                DomainError::NotFound("channel"),
            ),
            (
                state(archived_ch(facts(false)), true),
                DomainError::Archived,
            ),
        ];
        for (s, want) in cases {
            assert_eq!(decide_upload(&bob, &s, &upload()), Err(want));
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(parse_name("report.pdf").is_ok());
        for bad in ["", "a/b", "a\\b", "a\nb", &"x".repeat(256)] {
            assert!(parse_name(bad).is_err(), "{bad:?}");
        }
    }

    fn file(id: &str, channel: &str, uploader: &str, attached: bool) -> FileFacts {
        FileFacts {
            id: id.into(),
            channel_id: channel.into(),
            uploader_id: uploader.into(),
            attached,
            gone: false,
        }
    }

    #[test]
    fn gone_files_are_not_found_and_only_old_unattached_ones_expire() {
        let bob = caller("bob");
        let mut f = file("F1", "C1", "bob", false);
        f.gone = true;
        assert_eq!(
            check_attachments(&bob, &"C1".into(), &["F1".into()], &[f]),
            Err(DomainError::NotFound("file"))
        );
        let id: FileId = "F1".into();
        let facts = |attached, gone| ExpiryFacts {
            attached,
            gone,
            uploaded_ms: 1_000,
        };
        assert!(matches!(
            decide_expiry(&id, Some(&facts(false, false)), 2_000, 1_000),
            Some(Body::FileExpired(e)) if e.file_id == "F1"
        ));
        assert_eq!(
            decide_expiry(&id, Some(&facts(false, false)), 1_999, 1_000),
            None
        );
        assert_eq!(
            decide_expiry(&id, Some(&facts(true, false)), 9_000, 1_000),
            None
        );
        assert_eq!(
            decide_expiry(&id, Some(&facts(false, true)), 9_000, 1_000),
            None
        );
        assert_eq!(decide_expiry(&id, None, 9_000, 1_000), None);
    }

    #[test]
    fn only_own_unattached_files_of_the_channel_are_attached() {
        let bob = caller("bob");
        let c1: ChannelId = "C1".into();
        let ok = [file("F1", "C1", "bob", false)];
        assert_eq!(check_attachments(&bob, &c1, &["F1".into()], &ok), Ok(()));
        let cases = [
            (
                file("F1", "C1", "carol", false),
                DomainError::NotFound("file"),
            ),
            (
                file("F1", "C2", "bob", false),
                DomainError::NotFound("file"),
            ),
            (
                file("F1", "C1", "bob", true),
                DomainError::Conflict("file F1 is attached to a message already".into()),
            ),
        ];
        for (f, want) in cases {
            assert_eq!(
                check_attachments(&bob, &c1, &["F1".into()], &[f]),
                Err(want)
            );
        }
        assert_eq!(
            check_attachments(&bob, &c1, &["F9".into()], &ok),
            Err(DomainError::NotFound("file"))
        );
        assert!(matches!(
            check_attachments(&bob, &c1, &["F1".into(), "F1".into()], &ok),
            Err(DomainError::Invalid(_))
        ));
        let many: Vec<FileId> = (0..=MAX_ATTACHMENTS)
            .map(|i| FileId::from(format!("F{i}").as_str()))
            .collect();
        assert!(matches!(
            check_attachments(&bob, &c1, &many, &ok),
            Err(DomainError::Invalid(_))
        ));
    }
}
