//! Status values of volumes, snapshots and attachments, spelled as Cinder does.
//!
//! The database stores these strings; every change of status is a
//! compare-and-set from a set of expected statuses, named in
//! [`crate::transitions`].

use std::fmt;
use std::str::FromStr;

/// What the three status types share, for code written once for all of them.
pub trait Status: Copy + Eq + fmt::Display + 'static {
    /// Every value, in declaration order.
    const ALL: &'static [Self];
}

macro_rules! status_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl Status for $name {
            const ALL: &'static [$name] = $name::ALL;
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "'{other}' is not a valid {}; expected one of: {}",
                        stringify!($name),
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

status_enum!(
    /// A volume's `status`.
    VolumeStatus {
        Creating => "creating",
        Available => "available",
        Reserved => "reserved",
        Attaching => "attaching",
        Detaching => "detaching",
        InUse => "in-use",
        Maintenance => "maintenance",
        Deleting => "deleting",
        AwaitingTransfer => "awaiting-transfer",
        Error => "error",
        ErrorDeleting => "error_deleting",
        BackingUp => "backing-up",
        RestoringBackup => "restoring-backup",
        ErrorBackingUp => "error_backing-up",
        ErrorRestoring => "error_restoring",
        ErrorExtending => "error_extending",
        Downloading => "downloading",
        Uploading => "uploading",
        Retyping => "retyping",
        Extending => "extending",
        Reverting => "reverting",
    }
);

status_enum!(
    /// A snapshot's `status`.
    SnapshotStatus {
        Creating => "creating",
        Available => "available",
        Deleting => "deleting",
        Error => "error",
        ErrorDeleting => "error_deleting",
        Restoring => "restoring",
        BackingUp => "backing-up",
    }
);

status_enum!(
    /// A volume's `attach_status` (and an attachment's status).
    AttachStatus {
        Detached => "detached",
        Reserved => "reserved",
        Attaching => "attaching",
        Attached => "attached",
        Detaching => "detaching",
        ErrorAttaching => "error_attaching",
        ErrorDetaching => "error_detaching",
    }
);

impl VolumeStatus {
    /// Whether this is one of the error statuses (`error`, `error_deleting`…).
    pub fn is_error(self) -> bool {
        matches!(
            self,
            VolumeStatus::Error
                | VolumeStatus::ErrorDeleting
                | VolumeStatus::ErrorBackingUp
                | VolumeStatus::ErrorRestoring
                | VolumeStatus::ErrorExtending
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips() {
        for s in VolumeStatus::ALL {
            assert_eq!(s.as_str().parse::<VolumeStatus>().unwrap(), *s);
        }
        for s in SnapshotStatus::ALL {
            assert_eq!(s.as_str().parse::<SnapshotStatus>().unwrap(), *s);
        }
        assert!("bogus".parse::<AttachStatus>().is_err());
    }

    #[test]
    fn error_statuses_are_those_spelled_with_error() {
        for s in VolumeStatus::ALL {
            assert_eq!(s.is_error(), s.as_str().contains("error"), "{s}");
        }
    }
}
