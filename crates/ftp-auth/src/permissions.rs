//! [`PermissionSet`]: what a logged-in user may do, as a set of
//! [`Permission`]s, and the names the users file spells them with.

use std::fmt;

use ftp_proto::command::Permission;

/// Every permission, in the order names are listed (and written back).
const ALL: [Permission; 9] = [
    Permission::List,
    Permission::Read,
    Permission::Write,
    Permission::Append,
    Permission::Delete,
    Permission::Rename,
    Permission::Mkdir,
    Permission::Rmdir,
    Permission::Chmod,
];

/// The name that stands for every permission in a users file.
pub const ALL_NAME: &str = "all";

/// A set of [`Permission`]s, one bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PermissionSet(u16);

impl PermissionSet {
    /// No permission at all.
    pub const fn empty() -> Self {
        PermissionSet(0)
    }

    /// Every permission.
    pub fn all() -> Self {
        ALL.iter().fold(Self::empty(), |set, &p| set.with(p))
    }

    /// List and Read: what anonymous users get.
    pub fn read_only() -> Self {
        Self::empty().with(Permission::List).with(Permission::Read)
    }

    pub fn contains(self, permission: Permission) -> bool {
        self.0 & bit(permission) != 0
    }

    pub fn insert(&mut self, permission: Permission) {
        self.0 |= bit(permission);
    }

    pub fn remove(&mut self, permission: Permission) {
        self.0 &= !bit(permission);
    }

    /// This set with `permission` added (for building sets in expressions).
    #[must_use]
    pub fn with(self, permission: Permission) -> Self {
        PermissionSet(self.0 | bit(permission))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The permissions in the set, in a fixed order.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        ALL.into_iter().filter(move |&p| self.contains(p))
    }

    /// Builds a set from users-file names; `"all"` adds every permission.
    /// An empty list gives the empty set (a user who can log in and move
    /// around but do nothing else).
    pub fn from_names<I, S>(names: I) -> Result<Self, UnknownPermission>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = Self::empty();
        for name in names {
            let name = name.as_ref();
            if name == ALL_NAME {
                set = Self::all();
                continue;
            }
            match permission_from_name(name) {
                Some(p) => set.insert(p),
                None => return Err(UnknownPermission(name.to_string())),
            }
        }
        Ok(set)
    }

    /// The users-file names of this set: `["all"]` for every permission,
    /// otherwise one name per permission.
    pub fn names(self) -> Vec<&'static str> {
        if self == Self::all() {
            vec![ALL_NAME]
        } else {
            self.iter().map(permission_name).collect()
        }
    }
}

/// The bit of one permission. An exhaustive match, so that a permission
/// added to ftp-proto fails to compile here instead of sharing a bit.
const fn bit(permission: Permission) -> u16 {
    1 << match permission {
        Permission::List => 0,
        Permission::Read => 1,
        Permission::Write => 2,
        Permission::Append => 3,
        Permission::Delete => 4,
        Permission::Rename => 5,
        Permission::Mkdir => 6,
        Permission::Rmdir => 7,
        Permission::Chmod => 8,
    }
}

/// The users-file name of a permission.
pub fn permission_name(permission: Permission) -> &'static str {
    match permission {
        Permission::List => "list",
        Permission::Read => "read",
        Permission::Write => "write",
        Permission::Append => "append",
        Permission::Delete => "delete",
        Permission::Rename => "rename",
        Permission::Mkdir => "mkdir",
        Permission::Rmdir => "rmdir",
        Permission::Chmod => "chmod",
    }
}

/// The permission a users-file name stands for. Names are lower case and
/// matched exactly, like every other key and value in the file.
pub fn permission_from_name(name: &str) -> Option<Permission> {
    ALL.into_iter().find(|&p| permission_name(p) == name)
}

/// A permission name that is not one of the known ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPermission(pub String);

impl fmt::Display for UnknownPermission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown permission {:?} (known: {ALL_NAME}", self.0)?;
        for p in ALL {
            write!(f, ", {}", permission_name(p))?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for UnknownPermission {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_and_read_only() {
        let all = PermissionSet::all();
        for p in ALL {
            assert!(all.contains(p));
        }
        let ro = PermissionSet::read_only();
        assert!(ro.contains(Permission::List));
        assert!(ro.contains(Permission::Read));
        assert!(!ro.contains(Permission::Write));
        assert_eq!(ro.iter().count(), 2);
        assert!(PermissionSet::empty().is_empty());
        assert_eq!(PermissionSet::default(), PermissionSet::empty());
    }

    #[test]
    fn insert_and_remove() {
        let mut set = PermissionSet::empty();
        set.insert(Permission::Mkdir);
        assert!(set.contains(Permission::Mkdir));
        assert!(!set.contains(Permission::Rmdir));
        set.remove(Permission::Mkdir);
        assert!(set.is_empty());
    }

    #[test]
    fn names_round_trip() {
        for p in ALL {
            assert_eq!(permission_from_name(permission_name(p)), Some(p));
        }
        let set = PermissionSet::from_names(["list", "read", "write"]).unwrap();
        assert_eq!(set.names(), vec!["list", "read", "write"]);
        assert_eq!(PermissionSet::from_names(set.names()).unwrap(), set);
        assert_eq!(PermissionSet::from_names(["all"]).unwrap(), PermissionSet::all());
        assert_eq!(PermissionSet::all().names(), vec!["all"]);
        assert_eq!(
            PermissionSet::from_names(["read", "all"]).unwrap(),
            PermissionSet::all()
        );
        assert_eq!(
            PermissionSet::from_names(Vec::<String>::new()).unwrap(),
            PermissionSet::empty()
        );
    }

    #[test]
    fn unknown_names_are_refused() {
        let err = PermissionSet::from_names(["read", "upload"]).unwrap_err();
        assert_eq!(err, UnknownPermission("upload".into()));
        assert!(err.to_string().contains("\"upload\""));
        // Names are exact, like TOML keys.
        assert!(PermissionSet::from_names(["Read"]).is_err());
        assert!(PermissionSet::from_names(["ALL"]).is_err());
    }
}
