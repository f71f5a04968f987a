//! Symlink-safe filesystem primitives (blocking: run them on the blocking pool).
//!
//! Every call takes an open directory handle and ONE name component, opens with `O_NOFOLLOW`
//! and inspects with `AT_SYMLINK_NOFOLLOW`: a symlink is an entry like any other (moved,
//! counted, copied or removed as the link itself), never a way elsewhere. A path with a `/` is
//! only ever built from our own constants (`.config/pip`), and resolved one component at a
//! time the same way. Walks hold O(1) directory handles: they climb back with `..` and check
//! that they arrived where they came from (device and inode), so a student who moves
//! directories around during a walk stops it instead of steering it.
use std::{
    collections::HashSet,
    ffi::{CStr, CString},
    fs::File,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
};

use rustix::{
    fs::{self as rfs, AtFlags, FileType, Gid, Mode, OFlags, RenameFlags, Stat, Timestamps, Uid},
    io::Errno,
};

use super::HomesError;

/// Directories: read-only handle, never through a symlink (ELOOP), never a non-directory.
const DIR: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Deeper trees are refused rather than walked (a guard against a runaway `mkdir -p` loop).
pub(super) const MAX_DEPTH: usize = 4096;

pub(super) fn io_err(what: impl Into<String>) -> impl FnOnce(Errno) -> HomesError {
    let what = what.into();
    move |e| HomesError::Io {
        what,
        source: e.into(),
    }
}

/// What a name in a directory is, without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Missing,
    Dir,
    Symlink,
    Other,
}

pub(super) fn lstat<P: rustix::path::Arg>(
    dir: BorrowedFd<'_>,
    name: P,
) -> Result<Option<Stat>, Errno> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

pub(super) fn kind_of(st: &Stat) -> Kind {
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => Kind::Dir,
        FileType::Symlink => Kind::Symlink,
        _ => Kind::Other,
    }
}

pub(super) fn kind<P: rustix::path::Arg>(dir: BorrowedFd<'_>, name: P) -> Result<Kind, Errno> {
    Ok(lstat(dir, name)?.as_ref().map_or(Kind::Missing, kind_of))
}

/// Opens `name` in `dir` as a directory: ELOOP for a symlink, ENOTDIR for anything else.
pub(super) fn open_dir<P: rustix::path::Arg>(
    dir: BorrowedFd<'_>,
    name: P,
) -> Result<OwnedFd, Errno> {
    rfs::openat(dir, name, DIR, Mode::empty())
}

/// Opens an existing directory handle of a configured path (the root, the archive): the
/// administrator's path may itself contain symlinks; what is below it may not.
pub(super) fn open_path(path: &std::path::Path) -> Result<OwnedFd, Errno> {
    rfs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// `mkdir` that accepts an existing directory (not a symlink to one).
pub(super) fn ensure_dir(dir: BorrowedFd<'_>, name: &str, mode: u32) -> Result<OwnedFd, Errno> {
    match rfs::mkdirat(dir, name, Mode::from_raw_mode(mode)) {
        Ok(()) | Err(Errno::EXIST) => open_dir(dir, name),
        Err(e) => Err(e),
    }
}

pub(super) fn dev_ino(st: &Stat) -> (u64, u64) {
    #[allow(clippy::useless_conversion)]
    (u64::from(st.st_dev), u64::from(st.st_ino))
}

/// Allocated bytes (what the disk gives up), not the apparent size: a sparse file counts what
/// it occupies.
pub(super) fn allocated(st: &Stat) -> u64 {
    u64::try_from(st.st_blocks).unwrap_or(0).saturating_mul(512)
}

/// Renames without replacing an existing target. NFS (and a few others) refuse
/// `RENAME_NOREPLACE` with EINVAL: there we look first, which is safe against other hubdesk
/// instances (we hold the home's lock) though not against a root shell racing us.
pub(super) fn rename_noreplace(
    from_dir: BorrowedFd<'_>,
    from: &str,
    to_dir: BorrowedFd<'_>,
    to: &str,
) -> Result<(), Errno> {
    match rfs::renameat_with(from_dir, from, to_dir, to, RenameFlags::NOREPLACE) {
        Err(Errno::INVAL) | Err(Errno::NOSYS) => {
            if lstat(to_dir, to)?.is_some() {
                return Err(Errno::EXIST);
            }
            rfs::renameat(from_dir, from, to_dir, to)
        }
        other => other,
    }
}

/// Makes a rename durable before the journal says it happened.
pub(super) fn sync_dir(dir: BorrowedFd<'_>) -> Result<(), Errno> {
    match rfs::fsync(dir) {
        // Some filesystems cannot fsync a directory; their renames are as durable as they get.
        Err(Errno::INVAL) | Err(Errno::BADF) => Ok(()),
        other => other,
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    pub(super) fn ids(self) -> (Option<Uid>, Option<Gid>) {
        (Some(Uid::from_raw(self.uid)), Some(Gid::from_raw(self.gid)))
    }
}

/// What a copy laid down.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Copied {
    pub files: u64,
    pub dirs: u64,
    pub links: u64,
    pub skipped: u64,
}

/// Copies the contents of directory `src` into the empty directory `dst` (which we created):
/// regular files with their permission bits (set-id bits dropped) and times, directories 0755,
/// symlinks as symlinks (never followed), everything owned by `owner`. Other kinds (fifos,
/// devices, sockets) are skipped. Ownership is set on the handles we created, so nothing is
/// chowned by path.
pub(super) fn copy_tree(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    owner: Owner,
    label: &str,
) -> Result<Copied, HomesError> {
    let mut copied = Copied::default();
    copy_level(src, dst, owner, label, 0, &mut copied)?;
    Ok(copied)
}

fn copy_level(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    owner: Owner,
    label: &str,
    depth: usize,
    copied: &mut Copied,
) -> Result<(), HomesError> {
    if depth > MAX_DEPTH {
        return Err(HomesError::UnsafePath(format!(
            "{label}: the template is deeper than {MAX_DEPTH} levels"
        )));
    }
    let (uid, gid) = owner.ids();
    for name in read_names(src).map_err(io_err(format!("reading {label}")))? {
        let what = || format!("{label}/{}", name.to_string_lossy());
        let Some(st) = lstat(src, name.as_c_str()).map_err(io_err(what()))? else {
            continue;
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                rfs::mkdirat(dst, name.as_c_str(), Mode::from_raw_mode(0o700))
                    .map_err(io_err(format!("creating {}", what())))?;
                let sub_dst = open_dir(dst, name.as_c_str()).map_err(io_err(what()))?;
                let sub_src = open_dir(src, name.as_c_str()).map_err(io_err(what()))?;
                copy_level(
                    sub_src.as_fd(),
                    sub_dst.as_fd(),
                    owner,
                    &what(),
                    depth + 1,
                    copied,
                )?;
                rfs::fchown(&sub_dst, uid, gid).map_err(io_err(format!("chown {}", what())))?;
                rfs::fchmod(&sub_dst, Mode::from_raw_mode(0o755))
                    .map_err(io_err(format!("chmod {}", what())))?;
                copied.dirs += 1;
            }
            FileType::RegularFile => {
                let from = rfs::openat(
                    src,
                    name.as_c_str(),
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(io_err(format!("opening {}", what())))?;
                let to = rfs::openat(
                    dst,
                    name.as_c_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(io_err(format!("creating {}", what())))?;
                let mut from = File::from(from);
                let mut to = File::from(to);
                std::io::copy(&mut from, &mut to).map_err(|source| HomesError::Io {
                    what: format!("copying {}", what()),
                    source,
                })?;
                rfs::fchown(&to, uid, gid).map_err(io_err(format!("chown {}", what())))?;
                // After chown, which would clear set-id bits anyway; those are not course material.
                rfs::fchmod(&to, Mode::from_raw_mode(st.st_mode & 0o1777))
                    .map_err(io_err(format!("chmod {}", what())))?;
                rfs::futimens(&to, &times_of(&st)).map_err(io_err(format!("times {}", what())))?;
                copied.files += 1;
            }
            FileType::Symlink => {
                let target = rfs::readlinkat(src, name.as_c_str(), Vec::new())
                    .map_err(io_err(format!("reading link {}", what())))?;
                rfs::symlinkat(target.as_c_str(), dst, name.as_c_str())
                    .map_err(io_err(format!("creating link {}", what())))?;
                rfs::chownat(dst, name.as_c_str(), uid, gid, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(io_err(format!("chown link {}", what())))?;
                copied.links += 1;
            }
            _ => {
                tracing::warn!(path = %what(), "template: skipping a special file");
                copied.skipped += 1;
            }
        }
    }
    Ok(())
}

pub(super) fn times_of(st: &Stat) -> Timestamps {
    let ts = |sec: i64, nsec: u64| rfs::Timespec {
        tv_sec: sec,
        tv_nsec: nsec.try_into().unwrap_or(0),
    };
    #[allow(clippy::useless_conversion)]
    Timestamps {
        last_access: ts(
            i64::from(st.st_atime),
            u64::try_from(st.st_atime_nsec).unwrap_or(0),
        ),
        last_modification: ts(
            i64::from(st.st_mtime),
            u64::try_from(st.st_mtime_nsec).unwrap_or(0),
        ),
    }
}

/// The names in a directory, without `.` and `..`.
pub(super) fn read_names(dir: BorrowedFd<'_>) -> Result<Vec<CString>, Errno> {
    let mut out = Vec::new();
    let mut entries = rfs::Dir::read_from(dir)?;
    while let Some(entry) = entries.read() {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            out.push(name.to_owned());
        }
    }
    Ok(out)
}

struct Level {
    id: (u64, u64),
    names: Vec<CString>,
    next: usize,
}

/// Walks the tree below the directory `top` depth-first. `visit(dir, name, stat)` sees every
/// entry (lstat) and says whether to descend into it (asked for directories only to mean
/// anything); `leave(dir, name)` runs after a subdirectory is done, with its parent open.
/// Entries that vanish or turn into something else between the look and the open are skipped;
/// a parent that is no longer where the walk left it stops the walk.
fn walk(
    top: OwnedFd,
    label: &str,
    visit: &mut dyn FnMut(BorrowedFd<'_>, &CStr, &Stat) -> Result<bool, HomesError>,
    leave: &mut dyn FnMut(BorrowedFd<'_>, &CStr) -> Result<(), HomesError>,
) -> Result<(), HomesError> {
    let top_st = rfs::fstat(&top).map_err(io_err(label.to_string()))?;
    let mut cur = top;
    let mut stack = vec![Level {
        id: dev_ino(&top_st),
        names: read_names(cur.as_fd()).map_err(io_err(format!("reading {label}")))?,
        next: 0,
    }];
    loop {
        let level = stack.last_mut().expect("walk stack holds the top");
        if level.next < level.names.len() {
            let name = level.names[level.next].clone();
            level.next += 1;
            let st = match lstat(cur.as_fd(), name.as_c_str()) {
                Ok(Some(st)) => st,
                Ok(None) => continue,
                Err(e) => return Err(io_err(format!("{label}: {}", name.to_string_lossy()))(e)),
            };
            let descend = visit(cur.as_fd(), &name, &st)?;
            if !(descend && kind_of(&st) == Kind::Dir) {
                continue;
            }
            let child = match open_dir(cur.as_fd(), name.as_c_str()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) | Err(Errno::LOOP) | Err(Errno::NOTDIR) => continue,
                Err(e) => return Err(io_err(format!("{label}: {}", name.to_string_lossy()))(e)),
            };
            let child_st = rfs::fstat(&child).map_err(io_err(label.to_string()))?;
            if dev_ino(&child_st) != dev_ino(&st) {
                continue; // swapped between the look and the open: not the entry we saw
            }
            if stack.len() >= MAX_DEPTH {
                return Err(HomesError::UnsafePath(format!(
                    "{label}: deeper than {MAX_DEPTH} levels"
                )));
            }
            let names = read_names(child.as_fd()).map_err(io_err(format!("reading {label}")))?;
            stack.push(Level {
                id: dev_ino(&child_st),
                names,
                next: 0,
            });
            cur = child;
        } else {
            if stack.len() == 1 {
                return Ok(());
            }
            stack.pop();
            let parent = open_dir(cur.as_fd(), c"..").map_err(io_err(label.to_string()))?;
            let parent_st = rfs::fstat(&parent).map_err(io_err(label.to_string()))?;
            let level = stack.last().expect("walk stack holds the top");
            if dev_ino(&parent_st) != level.id {
                return Err(HomesError::UnsafePath(format!(
                    "{label}: a directory was moved during the walk; nothing more was done"
                )));
            }
            cur = parent;
            let name = level.names[level.next - 1].clone();
            leave(cur.as_fd(), &name)?;
        }
    }
}

/// Allocated bytes of the entry `name` in `dir` and everything below it, never following a
/// symlink (a link counts its own blocks), each hard-linked inode once, and not crossing into
/// another filesystem mounted inside.
pub(super) fn usage(dir: BorrowedFd<'_>, name: &str, label: &str) -> Result<u64, HomesError> {
    let Some(st) = lstat(dir, name).map_err(io_err(label.to_string()))? else {
        return Err(HomesError::NotFound(format!("{label} does not exist")));
    };
    let mut total = allocated(&st);
    if kind_of(&st) != Kind::Dir {
        return Ok(total);
    }
    let top = match open_dir(dir, name) {
        Ok(fd) => fd,
        Err(Errno::LOOP) | Err(Errno::NOTDIR) => return Ok(total),
        Err(e) => return Err(io_err(label.to_string())(e)),
    };
    let dev = dev_ino(&st).0;
    let mut seen = HashSet::new();
    walk(
        top,
        label,
        &mut |_, _, st| {
            #[allow(clippy::useless_conversion)]
            let links = u64::from(st.st_nlink);
            if kind_of(st) != Kind::Dir && links > 1 && !seen.insert(dev_ino(st)) {
                return Ok(false);
            }
            total += allocated(st);
            Ok(dev_ino(st).0 == dev)
        },
        &mut |_, _| Ok(()),
    )?;
    Ok(total)
}

/// Removes the entry `name` in `dir` and everything below it, never following a symlink and
/// never crossing into another filesystem (refused). Only for trees hubdesk owns: its own
/// temporary copies of the template, and archives an administrator purges.
pub(super) fn remove_tree(dir: BorrowedFd<'_>, name: &str, label: &str) -> Result<(), HomesError> {
    let Some(st) = lstat(dir, name).map_err(io_err(label.to_string()))? else {
        return Ok(());
    };
    if kind_of(&st) != Kind::Dir {
        return rfs::unlinkat(dir, name, AtFlags::empty())
            .map_err(io_err(format!("removing {label}")));
    }
    let top = open_dir(dir, name).map_err(io_err(label.to_string()))?;
    let dev = dev_ino(&st).0;
    walk(
        top,
        label,
        &mut |d, n, st| {
            if kind_of(st) == Kind::Dir {
                if dev_ino(st).0 != dev {
                    return Err(HomesError::UnsafePath(format!(
                        "{label}: {} is another filesystem mounted inside; not removed",
                        n.to_string_lossy()
                    )));
                }
                return Ok(true);
            }
            match rfs::unlinkat(d, n, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => Ok(false),
                Err(e) => Err(io_err(format!("removing {label}/{}", n.to_string_lossy()))(
                    e,
                )),
            }
        },
        &mut |d, n| match rfs::unlinkat(d, n, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(io_err(format!("removing {label}/{}", n.to_string_lossy()))(
                e,
            )),
        },
    )?;
    match rfs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(io_err(format!("removing {label}"))(e)),
    }
}

/// Opens the parent directory of a relative item like `.config/pip` inside `top`, one
/// component at a time without following symlinks; `None` when a component is missing or is
/// not a real directory (then the item is not there, as far as we are concerned).
pub(super) fn open_parent<'a>(
    top: BorrowedFd<'_>,
    item: &'a str,
) -> Result<Option<(OwnedFd, &'a str)>, Errno> {
    let mut parts: Vec<&str> = item.split('/').collect();
    let leaf = parts.pop().unwrap_or_default();
    let mut cur = rfs::openat(top, c".", DIR, Mode::empty())?;
    for part in parts {
        cur = match open_dir(cur.as_fd(), part) {
            Ok(fd) => fd,
            Err(Errno::NOENT) | Err(Errno::LOOP) | Err(Errno::NOTDIR) => return Ok(None),
            Err(e) => return Err(e),
        };
    }
    Ok(Some((cur, leaf)))
}

/// Like [`open_parent`], creating missing components (mode 0700 if `owner` is `None`, else
/// 0755 owned by `owner`).
pub(super) fn make_parent<'a>(
    top: BorrowedFd<'_>,
    item: &'a str,
    owner: Option<Owner>,
) -> Result<(OwnedFd, &'a str), Errno> {
    let mut parts: Vec<&str> = item.split('/').collect();
    let leaf = parts.pop().unwrap_or_default();
    let mut cur = rfs::openat(top, c".", DIR, Mode::empty())?;
    for part in parts {
        let created = match rfs::mkdirat(cur.as_fd(), part, Mode::from_raw_mode(0o700)) {
            Ok(()) => true,
            Err(Errno::EXIST) => false,
            Err(e) => return Err(e),
        };
        let next = open_dir(cur.as_fd(), part)?;
        if created {
            if let Some(owner) = owner {
                let (uid, gid) = owner.ids();
                rfs::fchown(&next, uid, gid)?;
                rfs::fchmod(&next, Mode::from_raw_mode(0o755))?;
            }
        }
        cur = next;
    }
    Ok((cur, leaf))
}

/// Whether the relative item (`.local`, `.config/pip`) is present in `top`, as itself (a
/// symlink named `.local` is present; a `.config` that is a symlink hides `.config/pip`).
pub(super) fn item_present(top: BorrowedFd<'_>, item: &str) -> Result<bool, Errno> {
    match open_parent(top, item)? {
        Some((parent, leaf)) => Ok(kind(parent.as_fd(), leaf)? != Kind::Missing),
        None => Ok(false),
    }
}

/// Moves the relative item from `from_top` to the same place in `to_top`, creating parents
/// there. Returns false (and moves nothing) when it is not in `from_top` or already in
/// `to_top`.
pub(super) fn move_item(
    from_top: BorrowedFd<'_>,
    to_top: BorrowedFd<'_>,
    item: &str,
    to_owner: Option<Owner>,
) -> Result<bool, Errno> {
    let Some((from, leaf)) = open_parent(from_top, item)? else {
        return Ok(false);
    };
    if kind(from.as_fd(), leaf)? == Kind::Missing {
        return Ok(false);
    }
    let (to, _) = make_parent(to_top, item, to_owner)?;
    if kind(to.as_fd(), leaf)? != Kind::Missing {
        return Ok(false);
    }
    rename_noreplace(from.as_fd(), leaf, to.as_fd(), leaf)?;
    sync_dir(to.as_fd())?;
    Ok(true)
}

/// Removes `name` in `dir` if it is an empty directory; anything else stays. Used only on the
/// scaffolding hubdesk made to hold items (`<entry>/.config`, the entry itself).
pub(super) fn rmdir_if_empty(dir: BorrowedFd<'_>, name: &str) -> Result<bool, Errno> {
    if kind(dir, name)? != Kind::Dir {
        return Ok(false);
    }
    match rfs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) => Ok(true),
        Err(Errno::NOTEMPTY) | Err(Errno::EXIST) | Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(e),
    }
}
