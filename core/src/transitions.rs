//! The state machine of volumes, snapshots and attachments, in one table.
//!
//! Each operation that changes (or depends on) a status is named here once:
//! the statuses it may start from, the interim status a worker holds while
//! it carries the operation out, where it ends and where it ends when it
//! fails. Every compare-and-set of the api, the scheduler and the volume
//! manager takes its expected statuses from this table, and Cinder's error
//! messages that quote them are rendered from it.
//!
//! A volume's status while attachments decide it is the rule in
//! [`attachment::IMPLIES`]. [`markdown`] prints the whole table
//! (`docs/transitions.md` is its output, kept current by a test).

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use crate::status::{AttachStatus, Status};

/// The statuses an operation may start from.
#[derive(Debug, Clone, Copy)]
pub enum Allowed<S: 'static> {
    /// None: the operation creates the resource.
    New,
    /// Any status.
    Any,
    /// One of these.
    Only(&'static [S]),
    /// Any status but these.
    AnyBut(&'static [S]),
}

impl<S: Status> Allowed<S> {
    /// Whether an operation may start from `status`.
    pub fn contains(&self, status: S) -> bool {
        match self {
            Allowed::New => false,
            Allowed::Any => true,
            Allowed::Only(set) => set.contains(&status),
            Allowed::AnyBut(set) => !set.contains(&status),
        }
    }

    /// The statuses themselves (for `Any` and `AnyBut` in declaration order;
    /// none for `New`).
    pub fn statuses(&self) -> Cow<'static, [S]> {
        match self {
            Allowed::Only(set) => Cow::Borrowed(*set),
            Allowed::Any => Cow::Borrowed(S::ALL),
            Allowed::New | Allowed::AnyBut(_) => Cow::Owned(
                S::ALL
                    .iter()
                    .copied()
                    .filter(|s| self.contains(*s))
                    .collect(),
            ),
        }
    }

    /// The set as a compare-and-set expects it: `None` when any status will do.
    pub fn guard(&self) -> Option<Cow<'static, [S]>> {
        match self {
            Allowed::Any => None,
            _ => Some(self.statuses()),
        }
    }

    /// The set as Cinder quotes it in messages: `'available', 'in-use'`.
    pub fn quoted(&self) -> String {
        let words: Vec<String> = self.statuses().iter().map(|s| format!("'{s}'")).collect();
        words.join(", ")
    }

    /// The set as Cinder words it in prose: `available or in-use`.
    pub fn or_list(&self) -> String {
        let words: Vec<String> = self.statuses().iter().map(|s| s.to_string()).collect();
        words.join(" or ")
    }
}

impl<S: Status> fmt::Display for Allowed<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Allowed::New => f.write_str("(new)"),
            Allowed::Any => f.write_str("any"),
            Allowed::Only(set) => f.write_str(&ticked(set)),
            Allowed::AnyBut(set) => write!(f, "any but {}", ticked(set)),
        }
    }
}

/// Where an operation leaves a resource when it succeeds.
#[derive(Debug, Clone, Copy)]
pub enum To<S> {
    /// This status.
    Status(S),
    /// The status it had before the operation began (kept in `previous_status`).
    Previous,
    /// What the volume's attachments imply ([`attachment::IMPLIES`]).
    Implied,
    /// The status is left as it is: the operation only requires one.
    Unchanged,
    /// The status the administrator names.
    Given,
    /// The resource is removed.
    Removed,
}

impl<S: Copy> To<S> {
    /// The status a compare-and-set writes: `None` unless it is a fixed one.
    pub const fn status(&self) -> Option<S> {
        match self {
            To::Status(s) => Some(*s),
            _ => None,
        }
    }
}

impl<S: Status> fmt::Display for To<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            To::Status(s) => write!(f, "`{s}`"),
            To::Previous => f.write_str("the status before"),
            To::Implied => f.write_str("implied by its attachments"),
            To::Unchanged => f.write_str("unchanged"),
            To::Given => f.write_str("as given"),
            To::Removed => f.write_str("(removed)"),
        }
    }
}

/// One operation's move of a resource's status.
#[derive(Debug, Clone, Copy)]
pub struct Transition<S: 'static> {
    /// The operation, as the API (or the table) calls it.
    pub name: &'static str,
    /// The statuses it may start from.
    pub from: Allowed<S>,
    /// The status it is held in while a worker carries it out (`None`: the
    /// change is made at once).
    pub interim: Option<S>,
    /// Where it ends when it succeeds.
    pub to: To<S>,
    /// Where it ends when it fails (`None`: see `to`, or nothing to fail).
    pub failed: Option<S>,
}

impl<S: Status> Transition<S> {
    /// The statuses the worker finishing the operation expects: its interim one.
    pub fn in_progress(&self) -> &[S] {
        self.interim.as_slice()
    }
}

/// `` `a`, `b` `` for the table.
fn ticked<S: fmt::Display>(set: &[S]) -> String {
    let words: Vec<String> = set.iter().map(|s| format!("`{s}`")).collect();
    words.join(", ")
}

/// The interim statuses of `ops`, each once, in table order: the statuses a
/// resource holds only while a worker owns it.
fn interims<S: Status>(ops: &[&Transition<S>]) -> Vec<S> {
    let mut out = Vec::new();
    for s in ops.iter().filter_map(|op| op.interim) {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// Operations on volumes.
pub mod volume {
    use super::{Allowed, To, Transition};
    use crate::status::VolumeStatus::{self, *};

    /// Creating a volume: placed by the scheduler, made by its backend.
    pub const CREATE: Transition<VolumeStatus> = Transition {
        name: "create",
        from: Allowed::New,
        interim: Some(Creating),
        to: To::Status(Available),
        failed: Some(Error),
    };
    /// Filling a new volume from a Glance image (after [`CREATE`] made it).
    pub const DOWNLOAD: Transition<VolumeStatus> = Transition {
        name: "create from image",
        from: Allowed::Only(&[Creating]),
        interim: Some(Downloading),
        to: To::Status(Available),
        failed: Some(Error),
    };
    /// `os-volume_upload_image` of a detached volume; the volume returns to
    /// its status whether the upload succeeds or fails.
    pub const UPLOAD_IMAGE: Transition<VolumeStatus> = Transition {
        name: "os-volume_upload_image",
        from: Allowed::Only(&[Available]),
        interim: Some(Uploading),
        to: To::Implied,
        failed: None,
    };
    /// `os-volume_upload_image` with `force` (and `enable_force_upload`).
    pub const UPLOAD_IMAGE_FORCED: Transition<VolumeStatus> = Transition {
        name: "os-volume_upload_image (force)",
        from: Allowed::Only(&[Available, InUse]),
        ..UPLOAD_IMAGE
    };
    /// Deleting a volume (not attached, without snapshots unless cascading).
    pub const DELETE: Transition<VolumeStatus> = Transition {
        name: "delete",
        from: Allowed::Only(&[Available, Error, ErrorRestoring, ErrorExtending]),
        interim: Some(Deleting),
        to: To::Removed,
        failed: Some(ErrorDeleting),
    };
    /// Deleting a volume with `force` (administrators).
    pub const FORCE_DELETE: Transition<VolumeStatus> = Transition {
        name: "delete (force), os-force_delete",
        from: Allowed::AnyBut(&[Deleting]),
        ..DELETE
    };
    /// `os-extend` before 3.42: detached volumes only.
    pub const EXTEND: Transition<VolumeStatus> = Transition {
        name: "os-extend",
        from: Allowed::Only(&[Available]),
        interim: Some(Extending),
        to: To::Previous,
        failed: Some(ErrorExtending),
    };
    /// `os-extend` from 3.42, which also extends attached volumes.
    pub const EXTEND_ATTACHED: Transition<VolumeStatus> = Transition {
        name: "os-extend (3.42)",
        from: Allowed::Only(&[Available, InUse]),
        ..EXTEND
    };
    /// `revert` (3.40) to the latest snapshot; a failure that left the data
    /// untouched ends in `to` instead of `failed`.
    pub const REVERT: Transition<VolumeStatus> = Transition {
        name: "revert",
        from: Allowed::Only(&[Available]),
        interim: Some(Reverting),
        to: To::Status(Available),
        failed: Some(Error),
    };
    /// Legacy `os-reserve` of a single-attach volume.
    pub const RESERVE: Transition<VolumeStatus> = Transition {
        name: "os-reserve",
        from: Allowed::Only(&[Available]),
        interim: None,
        to: To::Status(Attaching),
        failed: None,
    };
    /// Legacy `os-reserve` of a multiattach volume.
    pub const RESERVE_MULTIATTACH: Transition<VolumeStatus> = Transition {
        name: "os-reserve (multiattach)",
        from: Allowed::Only(&[Available, InUse]),
        ..RESERVE
    };
    /// Legacy `os-unreserve` (and the end of `os-terminate_connection`).
    pub const UNRESERVE: Transition<VolumeStatus> = Transition {
        name: "os-unreserve",
        from: Allowed::Only(&[Attaching]),
        interim: None,
        to: To::Implied,
        failed: None,
    };
    /// Legacy `os-begin_detaching`.
    pub const BEGIN_DETACHING: Transition<VolumeStatus> = Transition {
        name: "os-begin_detaching",
        from: Allowed::Only(&[InUse]),
        interim: None,
        to: To::Status(Detaching),
        failed: None,
    };
    /// Legacy `os-roll_detaching`.
    pub const ROLL_DETACHING: Transition<VolumeStatus> = Transition {
        name: "os-roll_detaching",
        from: Allowed::Only(&[Detaching]),
        interim: None,
        to: To::Status(InUse),
        failed: None,
    };
    /// A new attachment (3.27) to a single-attach volume.
    pub const ATTACH: Transition<VolumeStatus> = Transition {
        name: "attachment create",
        from: Allowed::Only(&[Available, Downloading]),
        interim: None,
        to: To::Implied,
        failed: None,
    };
    /// A new attachment to a multiattach volume.
    pub const ATTACH_MULTIATTACH: Transition<VolumeStatus> = Transition {
        name: "attachment create (multiattach)",
        from: Allowed::Only(&[Available, InUse, Downloading, Reserved, Attaching]),
        ..ATTACH
    };
    /// A new attachment for a server that already has one to the volume
    /// (Nova does this while moving a server between hosts).
    pub const ATTACH_SAME_SERVER: Transition<VolumeStatus> = Transition {
        name: "attachment create (same server)",
        from: Allowed::Only(&[InUse, Reserved]),
        ..ATTACH
    };
    /// An administrator's `os-force_detach`: whatever the attachment's state.
    pub const FORCE_DETACH: Transition<VolumeStatus> = Transition {
        name: "os-force_detach",
        from: Allowed::Any,
        interim: None,
        to: To::Implied,
        failed: None,
    };
    /// Taking a snapshot of the volume.
    pub const SNAPSHOT: Transition<VolumeStatus> = Transition {
        name: "snapshot create",
        from: Allowed::Only(&[Available]),
        interim: None,
        to: To::Unchanged,
        failed: None,
    };
    /// Taking a snapshot with `force`, also of an attached volume.
    pub const SNAPSHOT_FORCED: Transition<VolumeStatus> = Transition {
        name: "snapshot create (force)",
        from: Allowed::Only(&[Available, InUse]),
        ..SNAPSHOT
    };
    /// `os-reset_status` (administrators).
    pub const RESET_STATUS: Transition<VolumeStatus> = Transition {
        name: "os-reset_status",
        from: Allowed::AnyBut(&[Deleting]),
        interim: None,
        to: To::Given,
        failed: None,
    };
    /// `os-set_bootable`.
    pub const SET_BOOTABLE: Transition<VolumeStatus> = Transition {
        name: "os-set_bootable",
        from: Allowed::AnyBut(&[Maintenance]),
        interim: None,
        to: To::Unchanged,
        failed: None,
    };
    /// `os-update_readonly_flag`.
    pub const UPDATE_READONLY_FLAG: Transition<VolumeStatus> = Transition {
        name: "os-update_readonly_flag",
        from: Allowed::Only(&[Available]),
        interim: None,
        to: To::Unchanged,
        failed: None,
    };

    /// Every operation, in table order.
    pub const ALL: &[&Transition<VolumeStatus>] = &[
        &CREATE,
        &DOWNLOAD,
        &UPLOAD_IMAGE,
        &UPLOAD_IMAGE_FORCED,
        &DELETE,
        &FORCE_DELETE,
        &EXTEND,
        &EXTEND_ATTACHED,
        &REVERT,
        &RESERVE,
        &RESERVE_MULTIATTACH,
        &UNRESERVE,
        &BEGIN_DETACHING,
        &ROLL_DETACHING,
        &ATTACH,
        &ATTACH_MULTIATTACH,
        &ATTACH_SAME_SERVER,
        &FORCE_DETACH,
        &SNAPSHOT,
        &SNAPSHOT_FORCED,
        &RESET_STATUS,
        &SET_BOOTABLE,
        &UPDATE_READONLY_FLAG,
    ];

    /// The statuses a volume holds only while a worker owns it (what a
    /// volume service finds unfinished at start).
    pub fn in_progress() -> Vec<VolumeStatus> {
        super::interims(ALL)
    }
}

/// Operations on snapshots.
pub mod snapshot {
    use super::{Allowed, To, Transition};
    use crate::status::SnapshotStatus::{self, *};

    /// Taking a snapshot (see also [`super::volume::SNAPSHOT`]).
    pub const CREATE: Transition<SnapshotStatus> = Transition {
        name: "create",
        from: Allowed::New,
        interim: Some(Creating),
        to: To::Status(Available),
        failed: Some(Error),
    };
    /// Deleting a snapshot.
    pub const DELETE: Transition<SnapshotStatus> = Transition {
        name: "delete",
        from: Allowed::Only(&[Available, Error]),
        interim: Some(Deleting),
        to: To::Removed,
        failed: Some(ErrorDeleting),
    };
    /// `os-force_delete` (administrators).
    pub const FORCE_DELETE: Transition<SnapshotStatus> = Transition {
        name: "os-force_delete",
        from: Allowed::AnyBut(&[Deleting]),
        ..DELETE
    };
    /// Deleting the snapshots of a volume deleted with `cascade` (a snapshot
    /// already being deleted may come along).
    pub const CASCADE_DELETE: Transition<SnapshotStatus> = Transition {
        name: "volume delete (cascade)",
        from: Allowed::Only(&[Available, Error, Deleting]),
        ..DELETE
    };
    /// The snapshot a volume is reverted to; it is `available` again however
    /// the revert ends.
    pub const RESTORE: Transition<SnapshotStatus> = Transition {
        name: "volume revert",
        from: Allowed::Only(&[Available]),
        interim: Some(Restoring),
        to: To::Status(Available),
        failed: Some(Available),
    };
    /// `os-reset_status` (administrators).
    pub const RESET_STATUS: Transition<SnapshotStatus> = Transition {
        name: "os-reset_status",
        from: Allowed::Any,
        interim: None,
        to: To::Given,
        failed: None,
    };

    /// Every operation, in table order.
    pub const ALL: &[&Transition<SnapshotStatus>] = &[
        &CREATE,
        &DELETE,
        &FORCE_DELETE,
        &CASCADE_DELETE,
        &RESTORE,
        &RESET_STATUS,
    ];

    /// The statuses a snapshot holds only while a worker owns it.
    pub fn in_progress() -> Vec<SnapshotStatus> {
        super::interims(ALL)
    }
}

/// Operations on attachments, and the volume status they imply.
pub mod attachment {
    use super::{Allowed, To, Transition};
    use crate::status::AttachStatus::{self, *};
    use crate::status::VolumeStatus;

    /// Creating an attachment (3.27): it reserves the volume.
    pub const RESERVE: Transition<AttachStatus> = Transition {
        name: "create",
        from: Allowed::New,
        interim: None,
        to: To::Status(Reserved),
        failed: None,
    };
    /// Exporting the volume to a host (an update, or a create with a
    /// connector); a failed update leaves the attachment `failed`.
    pub const EXPORT: Transition<AttachStatus> = Transition {
        name: "update",
        from: Allowed::Any,
        interim: None,
        to: To::Status(Attaching),
        failed: Some(ErrorAttaching),
    };
    /// `os-complete` (3.44); completing twice is harmless.
    pub const COMPLETE: Transition<AttachStatus> = Transition {
        name: "os-complete",
        from: Allowed::Only(&[Reserved, Attaching, Attached]),
        interim: None,
        to: To::Status(Attached),
        failed: None,
    };
    /// Deleting an attachment: its export is removed first, and when that
    /// fails it stays, `failed`.
    pub const DELETE: Transition<AttachStatus> = Transition {
        name: "delete",
        from: Allowed::Any,
        interim: None,
        to: To::Removed,
        failed: Some(ErrorDetaching),
    };
    /// Legacy `os-initialize_connection`: a record of the export, not attached.
    pub const CONNECT: Transition<AttachStatus> = Transition {
        name: "os-initialize_connection",
        from: Allowed::New,
        interim: None,
        to: To::Status(Detached),
        failed: None,
    };
    /// Legacy `os-terminate_connection` (and the undo of a failed
    /// `os-initialize_connection`): only a record never attached goes.
    pub const DISCONNECT: Transition<AttachStatus> = Transition {
        name: "os-terminate_connection",
        from: Allowed::Only(&[Detached]),
        interim: None,
        to: To::Removed,
        failed: None,
    };
    /// Legacy `os-attach`.
    pub const ATTACH: Transition<AttachStatus> = Transition {
        name: "os-attach",
        from: Allowed::Only(&[Detached]),
        interim: None,
        to: To::Status(Attached),
        failed: None,
    };
    /// Legacy `os-detach` and the administrator's `os-force_detach`.
    pub const DETACH: Transition<AttachStatus> = Transition {
        name: "os-detach, os-force_detach",
        from: Allowed::Any,
        interim: None,
        to: To::Removed,
        failed: None,
    };

    /// Every operation, in table order.
    pub const ALL: &[&Transition<AttachStatus>] = &[
        &RESERVE,
        &EXPORT,
        &COMPLETE,
        &DELETE,
        &CONNECT,
        &DISCONNECT,
        &ATTACH,
        &DETACH,
    ];

    /// The status a volume's attachments give it: the first rule one of its
    /// attachments matches wins, and the volume's `attach_status` becomes that
    /// attachment's status.
    pub const IMPLIES: &[(AttachStatus, VolumeStatus)] = &[
        (Attached, VolumeStatus::InUse),
        (Attaching, VolumeStatus::Attaching),
        (Detaching, VolumeStatus::Detaching),
        (Reserved, VolumeStatus::Reserved),
    ];

    /// What a volume none of whose attachments matches [`IMPLIES`] is.
    pub const NONE_IMPLIES: (VolumeStatus, AttachStatus) = (VolumeStatus::Available, Detached);

    /// The volume statuses attachments decide: those they can imply. A volume
    /// in any other (`extending`, `maintenance`, an error…) keeps its status.
    pub fn decided() -> Vec<VolumeStatus> {
        let mut out: Vec<VolumeStatus> = IMPLIES.iter().map(|(_, v)| *v).collect();
        out.push(NONE_IMPLIES.0);
        out
    }
}

/// Appends the table of `ops` under the heading `title`.
fn section<S: Status>(out: &mut String, title: &str, ops: &[&Transition<S>]) {
    let cell = |s: Option<S>| s.map_or_else(|| "—".to_string(), |s| format!("`{s}`"));
    let _ = writeln!(out, "\n## {title}\n");
    out.push_str("| Operation | From | Interim | To | Failed |\n");
    out.push_str("|---|---|---|---|---|\n");
    for op in ops {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            op.name,
            op.from,
            cell(op.interim),
            op.to,
            cell(op.failed)
        );
    }
    let interims: Vec<String> = interims(ops).iter().map(|s| format!("`{s}`")).collect();
    if !interims.is_empty() {
        let _ = writeln!(
            out,
            "\nHeld only while a worker owns the operation (recovered at start): {}.",
            interims.join(", ")
        );
    }
}

/// The whole table as Markdown, as `docs/transitions.md` holds it.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Status transitions\n\n\
         Generated from `core/src/transitions.rs` by its tests \
         (`SCORIA_BLESS=1 cargo test -p scoria-core transitions` rewrites it).\n\
         Every compare-and-set of a status takes its expected statuses from that table.\n",
    );
    section(&mut out, "Volumes", volume::ALL);
    section(&mut out, "Snapshots", snapshot::ALL);
    section::<AttachStatus>(&mut out, "Attachments", attachment::ALL);
    out.push_str(
        "\n## The volume status attachments imply\n\n\
         The first row one of the volume's attachments matches wins; the volume's \
         `attach_status` becomes that attachment's status.\n\n\
         | An attachment is | Volume status |\n|---|---|\n",
    );
    for (att, vol) in attachment::IMPLIES {
        let _ = writeln!(out, "| `{att}` | `{vol}` |");
    }
    let (vol, att) = attachment::NONE_IMPLIES;
    let decided: Vec<String> = attachment::decided()
        .iter()
        .map(|s| format!("`{s}`"))
        .collect();
    let _ = writeln!(
        out,
        "| none of these | `{vol}` (`attach_status` `{att}`) |\n\n\
         Attachments decide the status of a volume only while it is one of {}.",
        decided.join(", ")
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{SnapshotStatus, VolumeStatus};

    #[test]
    fn allowed_sets_render_as_cinder_words_them() {
        assert_eq!(
            volume::DELETE.from.quoted(),
            "'available', 'error', 'error_restoring', 'error_extending'"
        );
        assert_eq!(
            volume::RESERVE_MULTIATTACH.from.or_list(),
            "available or in-use"
        );
        let forced = volume::FORCE_DELETE.from.statuses();
        assert_eq!(forced.len(), VolumeStatus::ALL.len() - 1);
        assert!(!forced.contains(&VolumeStatus::Deleting));
        assert!(snapshot::RESET_STATUS.from.guard().is_none());
        assert!(!snapshot::CREATE.from.contains(SnapshotStatus::Creating));
    }

    #[test]
    fn in_progress_statuses_are_the_interim_ones() {
        use VolumeStatus::*;
        assert_eq!(
            volume::in_progress(),
            [
                Creating,
                Downloading,
                Uploading,
                Deleting,
                Extending,
                Reverting
            ]
        );
        use SnapshotStatus as S;
        assert_eq!(
            snapshot::in_progress(),
            [S::Creating, S::Deleting, S::Restoring]
        );
    }

    /// `docs/transitions.md` is [`markdown`]'s output; `SCORIA_BLESS=1` rewrites it.
    #[test]
    fn docs_table_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/transitions.md");
        let table = markdown();
        if std::env::var_os("SCORIA_BLESS").is_some_and(|v| v == "1") {
            std::fs::write(path, &table).expect("write docs/transitions.md");
            return;
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == table,
            "docs/transitions.md does not match core/src/transitions.rs; \
             regenerate it with `SCORIA_BLESS=1 cargo test -p scoria-core transitions`"
        );
    }
}
