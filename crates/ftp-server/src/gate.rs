//! The one check every command passes before its handler runs, answered
//! from the command table: login (530), account for storing (532) and the
//! user's permissions (550). Handlers never repeat these checks.

use ftp_auth::{AccountRequirement, User};
use ftp_proto::command::VerbSpec;
use ftp_proto::{Reply, ReplyCode, Verb};

/// What the gate needs to know about the session.
pub(crate) struct GateView<'a> {
    pub user: Option<&'a User>,
    pub account_given: bool,
}

pub(crate) fn check(view: &GateView<'_>, spec: &VerbSpec) -> Result<(), Reply> {
    let Some(user) = view.user else {
        if spec.needs_login {
            return Err(Reply::new(ReplyCode::NotLoggedIn, "Please log in with USER and PASS"));
        }
        return Ok(());
    };
    if let Some(permission) = spec.permission {
        if !user.permissions.contains(permission) {
            return Err(Reply::new(ReplyCode::FileUnavailable, "Permission denied"));
        }
    }
    let stores = matches!(spec.verb, Verb::Stor | Verb::Stou | Verb::Appe | Verb::Mkd);
    if stores && user.account_requirement == AccountRequirement::ForStore && !view.account_given {
        return Err(Reply::new(
            ReplyCode::NeedAccountForStoring,
            "Need account for storing files; send ACCT",
        ));
    }
    Ok(())
}
