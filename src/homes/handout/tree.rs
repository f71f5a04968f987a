//! The filesystem side of a hand-out: a course folder copied into a home, never overwriting
//! anything there and never following a link (blocking: run it on the blocking pool).
//!
//! For every entry of the source (looked at with `AT_SYMLINK_NOFOLLOW`, opened `O_NOFOLLOW`):
//! - missing in the home: written (a file through a staging directory of hubdesk's own and a
//!   rename that does not replace, so a half-written file never carries its final name);
//! - present with the same content (a file with the same bytes, a link with the same target,
//!   a directory): left as it is, and a directory is entered;
//! - present and different (the student edited it, or made a file where the course has a
//!   directory, or a link anywhere): left as it is, and ours goes beside it under the first
//!   free name of `notes (handout).ipynb`, `notes (handout 2).ipynb`, … — a conflict.
//!
//! Doing it twice gives the same home as doing it once (a file already written beside is the
//! same content under the same name), which is what makes a resumed hand-out safe.
use std::{
    ffi::{CStr, CString},
    fs::File,
    io::Read,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
};

use rustix::{
    fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Stat},
    io::Errno,
};
use serde::{Deserialize, Serialize};

use super::super::{
    fs::{io_err, lstat, open_dir, read_names, rename_noreplace, Owner, MAX_DEPTH},
    HomesError,
};

/// How many names beside a conflicting one are tried before giving up.
const MAX_BESIDE: u32 = 100;

/// A course entry that could not take its own name in the home: the student's stays at
/// `path`, ours is at `beside` (both relative to the home).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    pub path: String,
    pub beside: String,
}

/// What one hand-out did to one home.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    /// Files and links written (directories made are not counted).
    pub written: u64,
    /// Entries already there with the same content.
    pub unchanged: u64,
    /// Special files of the course (fifos, sockets, devices): not handed out.
    pub skipped: u64,
    pub conflicts: Vec<Conflict>,
}

/// A test's stop in the middle of a hand-out: after `files` files are in the home and the
/// next one is staged (not yet renamed in), create `marker` and hang (for a `kill -9`).
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct HangAt {
    pub files: u64,
    pub marker: std::path::PathBuf,
}

/// Copies the directory `src` into `home` as `folder` (or beside it). `staging` is an empty
/// directory of hubdesk's own on the home's filesystem.
pub fn hand_out(
    src: BorrowedFd<'_>,
    home: BorrowedFd<'_>,
    folder: &str,
    staging: BorrowedFd<'_>,
    owner: Owner,
    hang: Option<HangAt>,
) -> Result<Placed, HomesError> {
    let mut placed = Placed::default();
    let mut cx = Cx {
        staging,
        owner,
        placed: &mut placed,
        next_temp: 0,
        hang,
    };
    let name =
        CString::new(folder).map_err(|_| HomesError::Invalid(format!("folder name {folder:?}")))?;
    let (dst, used) = cx.place_dir(home, &name, "")?;
    cx.copy_level(src, dst.as_fd(), &used.to_string_lossy(), 0)?;
    Ok(placed)
}

struct Cx<'a, 'p> {
    staging: BorrowedFd<'a>,
    owner: Owner,
    placed: &'p mut Placed,
    next_temp: u64,
    hang: Option<HangAt>,
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        format!("{rel}/{name}")
    }
}

/// `notes.ipynb` → `notes (handout).ipynb`, `notes (handout 2).ipynb`; a name without an
/// extension (or a dot-name) gets the suffix at the end.
pub fn beside_name(name: &str, n: u32) -> String {
    let tag = if n == 1 {
        " (handout)".to_string()
    } else {
        format!(" (handout {n})")
    };
    match name.rfind('.') {
        Some(i) if i > 0 => format!("{}{tag}{}", &name[..i], &name[i..]),
        _ => format!("{name}{tag}"),
    }
}

/// The names to try for `name`: its own, then the ones beside it.
fn candidates(name: &CStr, is_dir: bool) -> impl Iterator<Item = CString> + '_ {
    let text = name.to_string_lossy().into_owned();
    std::iter::once(name.to_owned()).chain((1..=MAX_BESIDE).filter_map(move |n| {
        let other = if is_dir {
            format!(
                "{text} (handout{})",
                if n == 1 {
                    String::new()
                } else {
                    format!(" {n}")
                }
            )
        } else {
            beside_name(&text, n)
        };
        CString::new(other).ok()
    }))
}

impl Cx<'_, '_> {
    fn conflict(&mut self, rel: &str, own: &CStr, used: &CStr) {
        if own != used {
            self.placed.conflicts.push(Conflict {
                path: join(rel, &own.to_string_lossy()),
                beside: join(rel, &used.to_string_lossy()),
            });
        }
    }

    /// The directory `name` in `dst` (made when missing), or the first free name beside it.
    fn place_dir(
        &mut self,
        dst: BorrowedFd<'_>,
        name: &CStr,
        rel: &str,
    ) -> Result<(OwnedFd, CString), HomesError> {
        let what = || join(rel, &name.to_string_lossy());
        for candidate in candidates(name, true) {
            match lstat(dst, candidate.as_c_str()).map_err(io_err(what()))? {
                None => match rfs::mkdirat(dst, candidate.as_c_str(), Mode::from_raw_mode(0o755)) {
                    Ok(()) => {
                        let fd = open_dir(dst, candidate.as_c_str()).map_err(io_err(what()))?;
                        let (uid, gid) = self.owner.ids();
                        rfs::fchown(&fd, uid, gid).map_err(io_err(format!("chown {}", what())))?;
                        self.conflict(rel, name, &candidate);
                        return Ok((fd, candidate));
                    }
                    Err(Errno::EXIST) => continue, // made meanwhile (the student's): look again
                    Err(e) => return Err(io_err(format!("creating {}", what()))(e)),
                },
                Some(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                    match open_dir(dst, candidate.as_c_str()) {
                        Ok(fd) => {
                            self.conflict(rel, name, &candidate);
                            return Ok((fd, candidate));
                        }
                        // Swapped for a link or a file between the look and the open.
                        Err(Errno::LOOP) | Err(Errno::NOTDIR) | Err(Errno::NOENT) => continue,
                        Err(e) => return Err(io_err(what())(e)),
                    }
                }
                Some(_) => continue,
            }
        }
        Err(HomesError::Invalid(format!(
            "{}: no free name beside it after {MAX_BESIDE} tries",
            what()
        )))
    }

    fn copy_level(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        rel: &str,
        depth: usize,
    ) -> Result<(), HomesError> {
        if depth > MAX_DEPTH {
            return Err(HomesError::UnsafePath(format!(
                "{rel}: the course folder is deeper than {MAX_DEPTH} levels"
            )));
        }
        let mut names = read_names(src).map_err(io_err(format!("reading {rel}")))?;
        names.sort();
        for name in names {
            let what = || join(rel, &name.to_string_lossy());
            let Some(st) = lstat(src, name.as_c_str()).map_err(io_err(what()))? else {
                continue;
            };
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => {
                    let sub_src = open_dir(src, name.as_c_str()).map_err(io_err(what()))?;
                    let (sub_dst, used) = self.place_dir(dst, &name, rel)?;
                    let sub_rel = join(rel, &used.to_string_lossy());
                    self.copy_level(sub_src.as_fd(), sub_dst.as_fd(), &sub_rel, depth + 1)?;
                }
                FileType::RegularFile => self.place_file(src, &name, &st, dst, rel)?,
                FileType::Symlink => self.place_link(src, &name, dst, rel)?,
                _ => self.placed.skipped += 1,
            }
        }
        Ok(())
    }

    fn place_file(
        &mut self,
        src: BorrowedFd<'_>,
        name: &CStr,
        st: &Stat,
        dst: BorrowedFd<'_>,
        rel: &str,
    ) -> Result<(), HomesError> {
        let what = || join(rel, &name.to_string_lossy());
        let open_src = || {
            rfs::openat(
                src,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io_err(format!("opening the course's {}", what())))
        };
        for candidate in candidates(name, false) {
            match lstat(dst, candidate.as_c_str()).map_err(io_err(what()))? {
                None => {
                    let temp = self.write_staged(open_src()?, st, &what())?;
                    if let Some(h) = self
                        .hang
                        .as_ref()
                        .filter(|h| h.files == self.placed.written)
                    {
                        let _ = std::fs::write(&h.marker, &temp);
                        loop {
                            std::thread::sleep(std::time::Duration::from_secs(3600));
                        }
                    }
                    match rename_noreplace(self.staging, &temp, dst, &candidate.to_string_lossy()) {
                        Ok(()) => {
                            self.placed.written += 1;
                            self.conflict(rel, name, &candidate);
                            return Ok(());
                        }
                        Err(Errno::EXIST) => {
                            let _ = rfs::unlinkat(self.staging, temp.as_str(), AtFlags::empty());
                            continue;
                        }
                        Err(e) => return Err(io_err(format!("placing {}", what()))(e)),
                    }
                }
                Some(there) if FileType::from_raw_mode(there.st_mode) == FileType::RegularFile => {
                    if there.st_size == st.st_size
                        && same_bytes(open_src()?, dst, &candidate).map_err(io_err(what()))?
                    {
                        self.placed.unchanged += 1;
                        self.conflict(rel, name, &candidate);
                        return Ok(());
                    }
                }
                Some(_) => {}
            }
        }
        Err(HomesError::Invalid(format!(
            "{}: no free name beside it after {MAX_BESIDE} tries",
            what()
        )))
    }

    fn place_link(
        &mut self,
        src: BorrowedFd<'_>,
        name: &CStr,
        dst: BorrowedFd<'_>,
        rel: &str,
    ) -> Result<(), HomesError> {
        let what = || join(rel, &name.to_string_lossy());
        let target =
            rfs::readlinkat(src, name, Vec::new()).map_err(io_err(format!("link {}", what())))?;
        let (uid, gid) = self.owner.ids();
        for candidate in candidates(name, false) {
            match rfs::symlinkat(target.as_c_str(), dst, candidate.as_c_str()) {
                Ok(()) => {
                    rfs::chownat(
                        dst,
                        candidate.as_c_str(),
                        uid,
                        gid,
                        AtFlags::SYMLINK_NOFOLLOW,
                    )
                    .map_err(io_err(format!("chown link {}", what())))?;
                    self.placed.written += 1;
                    self.conflict(rel, name, &candidate);
                    return Ok(());
                }
                Err(Errno::EXIST) => {
                    let same = rfs::readlinkat(dst, candidate.as_c_str(), Vec::new())
                        .is_ok_and(|t| t == target);
                    if same {
                        self.placed.unchanged += 1;
                        self.conflict(rel, name, &candidate);
                        return Ok(());
                    }
                }
                Err(e) => return Err(io_err(format!("creating link {}", what()))(e)),
            }
        }
        Err(HomesError::Invalid(format!(
            "{}: no free name beside it after {MAX_BESIDE} tries",
            what()
        )))
    }

    /// Writes the file into the staging directory, owned by the student, with the course's
    /// permission bits (set-id dropped) and times; its staging name.
    fn write_staged(&mut self, from: OwnedFd, st: &Stat, what: &str) -> Result<String, HomesError> {
        self.next_temp += 1;
        let temp = format!("f{}", self.next_temp);
        let to = rfs::openat(
            self.staging,
            temp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(io_err(format!("staging {what}")))?;
        let mut from = File::from(from);
        let mut to = File::from(to);
        std::io::copy(&mut from, &mut to).map_err(|source| HomesError::Io {
            what: format!("copying {what}"),
            source,
        })?;
        let (uid, gid) = self.owner.ids();
        rfs::fchown(&to, uid, gid).map_err(io_err(format!("chown {what}")))?;
        rfs::fchmod(&to, Mode::from_raw_mode(st.st_mode & 0o1777))
            .map_err(io_err(format!("chmod {what}")))?;
        rfs::futimens(&to, &super::super::fs::times_of(st))
            .map_err(io_err(format!("times {what}")))?;
        Ok(temp)
    }
}

/// Whether the file `name` in `dir` (not followed) holds the same bytes as `from`.
fn same_bytes(from: OwnedFd, dir: BorrowedFd<'_>, name: &CStr) -> Result<bool, Errno> {
    let there = rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let (mut a, mut b) = (File::from(from), File::from(there));
    let (mut x, mut y) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = read_full(&mut a, &mut x)?;
        let m = read_full(&mut b, &mut y)?;
        if n != m || x[..n] != y[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> Result<usize, Errno> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Errno::from_io_error(&e).unwrap_or(Errno::IO)),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use std::{
        collections::BTreeMap,
        os::unix::fs::{symlink, MetadataExt},
        path::{Path, PathBuf},
    };

    use proptest::prelude::*;

    use super::*;
    use crate::homes::fs::open_path;

    /// What a tree holds, links as links.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Entry {
        Dir,
        File(Vec<u8>),
        Link(PathBuf),
    }

    fn snapshot(top: &Path) -> BTreeMap<String, Entry> {
        fn walk(dir: &Path, rel: &str, out: &mut BTreeMap<String, Entry>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                let name = e.file_name().into_string().unwrap();
                let rel = join(rel, &name);
                let ft = e.file_type().unwrap();
                if ft.is_symlink() {
                    out.insert(rel, Entry::Link(std::fs::read_link(e.path()).unwrap()));
                } else if ft.is_dir() {
                    out.insert(rel.clone(), Entry::Dir);
                    walk(&e.path(), &rel, out);
                } else {
                    out.insert(rel, Entry::File(std::fs::read(e.path()).unwrap()));
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(top, "", &mut out);
        out
    }

    struct Scratch {
        base: PathBuf,
    }

    impl Scratch {
        fn new() -> Self {
            let base = std::env::temp_dir()
                .join(format!("hubdesk-handout-{}", uuid::Uuid::new_v4().simple()));
            for d in ["course", "home", "staging", "outside"] {
                std::fs::create_dir_all(base.join(d)).unwrap();
            }
            std::fs::write(base.join("outside/secret"), "not yours").unwrap();
            Scratch { base }
        }

        fn p(&self, rel: &str) -> PathBuf {
            self.base.join(rel)
        }

        fn hand_out(&self, folder: &str) -> Placed {
            let meta = std::fs::metadata(&self.base).unwrap();
            let owner = Owner {
                uid: meta.uid(),
                gid: meta.gid(),
            };
            let src = open_path(&self.p("course")).unwrap();
            let home = open_path(&self.p("home")).unwrap();
            let staging = open_path(&self.p("staging")).unwrap();
            hand_out(
                src.as_fd(),
                home.as_fd(),
                folder,
                staging.as_fd(),
                owner,
                None,
            )
            .unwrap()
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.base);
        }
    }

    #[test]
    fn a_new_folder_lands_whole_and_a_second_hand_out_changes_nothing() {
        let s = Scratch::new();
        std::fs::create_dir_all(s.p("course/data")).unwrap();
        std::fs::write(s.p("course/notes.ipynb"), "{}").unwrap();
        std::fs::write(s.p("course/data/table one.csv"), "a,b\n").unwrap();
        symlink("/etc/passwd", s.p("course/passwd")).unwrap();
        let placed = s.hand_out("week1");
        assert_eq!((placed.written, placed.unchanged), (3, 0));
        assert!(placed.conflicts.is_empty());
        assert_eq!(snapshot(&s.p("course")), snapshot(&s.p("home/week1")));
        let again = s.hand_out("week1");
        assert_eq!((again.written, again.unchanged), (0, 3));
        assert_eq!(snapshot(&s.p("course")), snapshot(&s.p("home/week1")));
        assert!(
            snapshot(&s.p("staging")).is_empty(),
            "nothing left in staging"
        );
    }

    #[test]
    fn a_students_edit_stays_and_the_course_file_goes_beside_it_once() {
        let s = Scratch::new();
        std::fs::write(s.p("course/notes.ipynb"), "course").unwrap();
        std::fs::write(s.p("course/README"), "read me").unwrap();
        std::fs::create_dir_all(s.p("home/week1")).unwrap();
        std::fs::write(s.p("home/week1/notes.ipynb"), "my answers").unwrap();
        std::fs::write(s.p("home/week1/README"), "read me").unwrap();
        let placed = s.hand_out("week1");
        assert_eq!(
            std::fs::read(s.p("home/week1/notes.ipynb")).unwrap(),
            b"my answers"
        );
        assert_eq!(
            std::fs::read(s.p("home/week1/notes (handout).ipynb")).unwrap(),
            b"course"
        );
        assert_eq!((placed.written, placed.unchanged), (1, 1));
        let conflict = Conflict {
            path: "week1/notes.ipynb".into(),
            beside: "week1/notes (handout).ipynb".into(),
        };
        assert_eq!(placed.conflicts, vec![conflict.clone()]);
        // Again: the copy beside is recognised, not written a second time.
        let again = s.hand_out("week1");
        assert_eq!((again.written, again.conflicts), (0, vec![conflict]));
        assert!(!s.p("home/week1/notes (handout 2).ipynb").exists());
    }

    #[test]
    fn a_link_the_student_planted_is_never_followed() {
        let s = Scratch::new();
        std::fs::create_dir_all(s.p("course/sub")).unwrap();
        std::fs::write(s.p("course/secret"), "course").unwrap();
        std::fs::write(s.p("course/sub/x"), "course").unwrap();
        // ~/week1 -> outside (a directory elsewhere), and a file named like the course's dir.
        symlink(s.p("outside"), s.p("home/week1")).unwrap();
        let before = snapshot(&s.p("outside"));
        let placed = s.hand_out("week1");
        assert_eq!(
            snapshot(&s.p("outside")),
            before,
            "nothing written through the link"
        );
        assert_eq!(
            std::fs::read(s.p("home/week1 (handout)/secret")).unwrap(),
            b"course"
        );
        assert_eq!(placed.conflicts[0].beside, "week1 (handout)");
        // A file where the course has a directory.
        std::fs::remove_dir_all(s.p("home/week1 (handout)")).unwrap();
        std::fs::remove_file(s.p("home/week1")).unwrap();
        std::fs::create_dir(s.p("home/week1")).unwrap();
        std::fs::write(s.p("home/week1/sub"), "mine").unwrap();
        let placed = s.hand_out("week1");
        assert_eq!(std::fs::read(s.p("home/week1/sub")).unwrap(), b"mine");
        assert_eq!(
            std::fs::read(s.p("home/week1/sub (handout)/x")).unwrap(),
            b"course"
        );
        assert_eq!(placed.conflicts.len(), 1);
    }

    #[test]
    fn names_beside_keep_the_extension() {
        assert_eq!(beside_name("notes.ipynb", 1), "notes (handout).ipynb");
        assert_eq!(beside_name("a.tar.gz", 2), "a.tar (handout 2).gz");
        assert_eq!(beside_name(".env", 1), ".env (handout)");
        assert_eq!(beside_name("README", 3), "README (handout 3)");
    }

    // ---- the property: random course and home trees ----------------------------------------

    /// A few names, so the course and the home collide often (spaces, non-ASCII, extensions).
    const NAMES: &[&str] = &[
        "a",
        "b c",
        "é",
        "notes.ipynb",
        "日本.txt",
        "week1",
        ".hidden",
    ];
    const CONTENTS: &[&[u8]] = &[b"", b"x", b"yy", b"course material"];

    #[derive(Debug, Clone)]
    enum Make {
        Dir,
        File(usize),
        /// 0: into `outside` by an absolute path, 1: `../../outside/secret`, 2: a sibling,
        /// 3: dangling.
        Link(usize),
    }

    fn ops() -> impl Strategy<Value = Vec<(Vec<usize>, Make)>> {
        let make = prop_oneof![
            Just(Make::Dir),
            (0..CONTENTS.len()).prop_map(Make::File),
            (0..4usize).prop_map(Make::Link),
        ];
        prop::collection::vec((prop::collection::vec(0..NAMES.len(), 1..4), make), 0..14)
    }

    /// Lays the ops under `top` (an op whose parent is not a directory is dropped).
    fn lay(top: &Path, outside: &Path, ops: &[(Vec<usize>, Make)]) {
        for (path, make) in ops {
            let mut dir = top.to_path_buf();
            let mut ok = true;
            for &i in &path[..path.len() - 1] {
                dir = dir.join(NAMES[i]);
                match std::fs::symlink_metadata(&dir) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        ok = false;
                        break;
                    }
                    Err(_) => std::fs::create_dir(&dir).unwrap(),
                }
            }
            let leaf = dir.join(NAMES[path[path.len() - 1]]);
            if !ok || std::fs::symlink_metadata(&leaf).is_ok() {
                continue;
            }
            match make {
                Make::Dir => std::fs::create_dir(&leaf).unwrap(),
                Make::File(c) => std::fs::write(&leaf, CONTENTS[*c]).unwrap(),
                Make::Link(0) => symlink(outside, &leaf).unwrap(),
                Make::Link(1) => symlink("../../outside/secret", &leaf).unwrap(),
                Make::Link(2) => symlink("a", &leaf).unwrap(),
                Make::Link(_) => symlink("/nonexistent/x", &leaf).unwrap(),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        /// Whatever the course and the home hold: nothing of the home is changed or removed,
        /// nothing outside it is touched, every course entry is in the home (at its name or
        /// beside it, as a conflict says), and a second hand-out writes nothing.
        #[test]
        fn a_hand_out_never_overwrites_or_follows(course in ops(), home in ops(), top in 0..NAMES.len()) {
            let s = Scratch::new();
            let folder = NAMES[top].trim_start_matches('.');
            let folder = if folder.is_empty() { "h" } else { folder };
            lay(&s.p("course"), &s.p("outside"), &course);
            // The home's trees go where the hand-out goes, so they collide with the course's.
            std::fs::create_dir_all(s.p("home").join(folder)).unwrap();
            lay(&s.p("home").join(folder), &s.p("outside"), &home);
            let home_before = snapshot(&s.p("home"));
            let outside_before = snapshot(&s.p("outside"));
            let course_tree = snapshot(&s.p("course"));

            let placed = s.hand_out(folder);
            let home_after = snapshot(&s.p("home"));
            prop_assert_eq!(snapshot(&s.p("outside")), outside_before);
            for (path, entry) in &home_before {
                prop_assert_eq!(home_after.get(path), Some(entry), "changed: {}", path);
            }
            // Where each course entry went: its own place, or the conflict's place beside it
            // (a directory beside moves everything below it).
            let moved: BTreeMap<&str, &str> = placed
                .conflicts
                .iter()
                .map(|c| (c.path.as_str(), c.beside.as_str()))
                .collect();
            for (rel, entry) in &course_tree {
                let mut at = join(folder, rel);
                // Apply the conflicts from the top down (a parent's move first).
                let mut prefix = String::new();
                for part in at.clone().split('/') {
                    let here = join(&prefix, part);
                    let here = moved.get(here.as_str()).map_or(here, |b| b.to_string());
                    prefix = here;
                }
                at = prefix;
                prop_assert_eq!(home_after.get(&at), Some(entry), "course entry {} not at {}", rel, at);
            }
            let again = s.hand_out(folder);
            prop_assert_eq!(again.written, 0);
            prop_assert_eq!(snapshot(&s.p("home")), home_after);
            prop_assert_eq!(again.conflicts, placed.conflicts);
        }
    }
}
