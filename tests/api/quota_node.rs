//! The NFS node's side of the storage limits: the real `deploy/hubdesk-quota.sh`, run against
//! a homes tree that real hubdesk operations made (create, reset, restore, environment reset,
//! with the real quota list), with recording stand-ins for `xfs_quota`, `xfs_io` and
//! `mountpoint` on PATH (this kernel has no disk quotas at all). The stand-ins keep each
//! inode's project id and inherit flag in a side table the way XFS would, so the test checks
//! what the tree would carry, and that every rename hubdesk makes would pass XFS's rule (no
//! rename into a project-inherit directory of another project: EXDEV).
use std::{
    collections::BTreeMap,
    os::unix::fs::{symlink, MetadataExt},
    path::{Path, PathBuf},
    process::Command,
};

use hubdesk::{
    config::{HomesConfig, StorageLimit},
    domain::{Actor, Username},
    homes::{quota::QUOTA_LIST, Homes, ResetScope},
};

use crate::helpers::{spawn_app_with_state, TestApp};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/hubdesk-quota.sh");

/// `xfs_quota`: logs its command line; `state -p` answers enforcement on (off with
/// FAKE_QUOTA_OFF); `project -s -p PATH ID` tags every inode below PATH (not following links)
/// with ID, and the directories with the inherit flag; `limit -p bhard=N ID` is recorded.
const FAKE_XFS_QUOTA: &str = r#"#!/bin/sh
echo "xfs_quota $*" >> "$FAKE_LOG"
cmd='' mnt=''
while [ $# -gt 0 ]; do
	case $1 in -c) cmd=$2; shift 2 ;; -D | -P) shift 2 ;; -x) shift ;; *) mnt=$1; shift ;; esac
done
set -f; set -- $cmd; set +f
case $1 in
state)
	echo "Project quota state on $mnt"
	echo "  Accounting: ON"
	if [ -n "${FAKE_QUOTA_OFF:-}" ]; then echo "  Enforcement: OFF"; else echo "  Enforcement: ON"; fi ;;
project)
	[ "$2" = -s ] && [ "$3" = -p ] || { echo "unexpected: $cmd" >&2; exit 2; }
	find -P "$4" -xdev | while IFS= read -r f; do
		ino=$(stat -c %i -- "$f")
		if [ -d "$f" ] && [ ! -L "$f" ]; then echo "$5 P" > "$FAKE_DB/$ino"; else echo "$5 -" > "$FAKE_DB/$ino"; fi
	done ;;
limit) echo "$3 $2" >> "$FAKE_DB/limits" ;;
*) echo "unexpected: $cmd" >&2; exit 2 ;;
esac
"#;

/// `xfs_io -r -c 'lsattr -v' PATH` and `xfs_io -r -c 'chproj -R ID' PATH` (the id on every
/// inode, flags kept).
const FAKE_XFS_IO: &str = r#"#!/bin/sh
echo "xfs_io $*" >> "$FAKE_LOG"
cmd='' path=''
while [ $# -gt 0 ]; do
	case $1 in -c) cmd=$2; shift 2 ;; -r) shift ;; *) path=$1; shift ;; esac
done
set -f; set -- $cmd; set +f
case "$1 $2" in
"lsattr -v")
	case $(cat "$FAKE_DB/$(stat -c %i -- "$path")" 2>/dev/null) in
	*" P") echo "[proj-inherit] $path " ;;
	*) echo "[] $path " ;;
	esac ;;
"chproj -R")
	find -P "$path" -xdev | while IFS= read -r f; do
		ino=$(stat -c %i -- "$f")
		flag=$(cut -d' ' -f2 "$FAKE_DB/$ino" 2>/dev/null || true)
		echo "$3 ${flag:--}" > "$FAKE_DB/$ino"
	done ;;
*) echo "unexpected: $cmd" >&2; exit 2 ;;
esac
"#;

fn u(s: &str) -> Username {
    Username::parse(s).unwrap()
}

struct Node {
    app: TestApp,
    homes: Homes,
    base: PathBuf,
    mount: PathBuf,
    export: PathBuf,
    bin: PathBuf,
    db: PathBuf,
    log: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

struct Pass {
    ok: bool,
    stderr: String,
    /// The stand-ins' command lines during this pass.
    calls: Vec<String>,
}

impl Pass {
    /// The calls that change anything (tagging, chproj, limits).
    fn changes(&self) -> Vec<&str> {
        self.calls
            .iter()
            .map(String::as_str)
            .filter(|c| c.contains("project -s") || c.contains("chproj") || c.contains("limit "))
            .collect()
    }
}

async fn node() -> Node {
    let app = spawn_app_with_state(|_| {}, |s| s.job_handlers.clear()).await;
    let base =
        std::env::temp_dir().join(format!("hubdesk-quota-{}", uuid::Uuid::new_v4().simple()));
    let mount = base.join("mnt");
    let export = mount.join("homes");
    std::fs::create_dir_all(&export).unwrap();
    let template = base.join("template");
    std::fs::create_dir_all(template.join("notebooks")).unwrap();
    std::fs::write(template.join("notebooks/intro.ipynb"), "{}").unwrap();
    let mut config = HomesConfig {
        root: Some(export.clone()),
        template: Some(template),
        archive_quota: StorageLimit::gib(100),
        ..HomesConfig::default()
    };
    config.resolve(&base).unwrap();
    let homes = Homes::open(&config, app.pool.clone()).await.unwrap();
    let bin = base.join("bin");
    let db = base.join("xfs");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&db).unwrap();
    for (name, text) in [
        ("xfs_quota", FAKE_XFS_QUOTA),
        ("xfs_io", FAKE_XFS_IO),
        ("mountpoint", "#!/bin/sh\nexit 0\n"),
    ] {
        std::fs::write(bin.join(name), text).unwrap();
        std::fs::set_permissions(
            bin.join(name),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
    }
    Node {
        app,
        homes,
        log: base.join("calls.log"),
        base,
        mount,
        export,
        bin,
        db,
    }
}

impl Node {
    fn pass_with(&self, env: &[(&str, &str)]) -> Pass {
        let _ = std::fs::remove_file(&self.log);
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("sh")
            .arg(SCRIPT)
            .env("PATH", path)
            .env("HUBDESK_QUOTA_MOUNT", &self.mount)
            .env("HUBDESK_QUOTA_EXPORT", &self.export)
            .env("FAKE_LOG", &self.log)
            .env("FAKE_DB", &self.db)
            .envs(env.iter().copied())
            .output()
            .expect("run hubdesk-quota.sh");
        let calls = std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        Pass {
            ok: out.status.success(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            calls,
        }
    }

    fn pass(&self) -> Pass {
        self.pass_with(&[])
    }

    fn state(&self, name: &str) -> String {
        std::fs::read_to_string(self.mount.join(".hubdesk-quota").join(name)).unwrap_or_default()
    }

    /// The project id the script gave `name` (`hubdesk-ana`, `hubdesk_archive`).
    fn id(&self, name: &str) -> u32 {
        self.state("projid")
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no project for {name}: {}", self.state("projid")))
            .parse()
            .unwrap()
    }

    /// What the side table says of `path`: (project id, inherit flag); `None`: never tagged.
    fn tag(&self, path: &Path) -> Option<(u32, bool)> {
        let ino = std::fs::symlink_metadata(path).unwrap().ino();
        let text = std::fs::read_to_string(self.db.join(ino.to_string())).ok()?;
        let (id, flag) = text.trim().split_once(' ')?;
        Some((id.parse().ok()?, flag == "P"))
    }

    /// Every path below `top` (itself included) by its tag.
    fn tags_below(&self, top: &Path) -> BTreeMap<PathBuf, Option<(u32, bool)>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![top.to_path_buf()];
        while let Some(p) = stack.pop() {
            let meta = std::fs::symlink_metadata(&p).unwrap();
            out.insert(p.clone(), self.tag(&p));
            if meta.is_dir() {
                for e in std::fs::read_dir(&p).unwrap() {
                    stack.push(e.unwrap().path());
                }
            }
        }
        out
    }

    fn archive(&self, user: &str) -> PathBuf {
        self.export.join(".archive").join(user)
    }

    /// XFS's rename rule for a move of `what` into the directory `into`: allowed unless `into`
    /// has the inherit flag and another project than `what`.
    fn rename_allowed(&self, what: &Path, into: &Path) -> bool {
        match (self.tag(into), self.tag(what)) {
            (Some((dir_id, true)), Some((id, _))) => dir_id == id,
            (Some((_, true)), None) => false, // project 0 into a tagged tree
            _ => true,
        }
    }

    async fn write_list(&self) {
        self.homes.write_quota_list().await.unwrap();
    }

    fn write_raw_list(&self, text: &str) {
        std::fs::write(self.export.join(QUOTA_LIST), text).unwrap();
    }
}

const GIB: u64 = 1 << 30;

#[tokio::test]
async fn quota_node_script_tags_limits_and_retags_as_hubdesk_moves_homes() {
    let n = node().await;
    let actor = Actor::System;
    for name in ["ana", "bob", "cy"] {
        n.app.create_student(&format!("{name} x"), name, None).await;
        n.homes.create(&u(name), &actor).await.unwrap();
    }
    n.homes
        .set_quota(&actor, &u("bob"), Some(StorageLimit::gib(10)))
        .await
        .unwrap();

    // Before hubdesk has written a list there is nothing to do, and nothing is done.
    std::fs::remove_file(n.export.join(QUOTA_LIST)).unwrap();
    let p = n.pass();
    assert!(
        p.ok && p.changes().is_empty(),
        "{}\n{:?}",
        p.stderr,
        p.calls
    );
    assert!(p.stderr.contains("no list"), "{}", p.stderr);
    n.write_list().await;

    // With project quotas off the script refuses (negative control for the check).
    let p = n.pass_with(&[("FAKE_QUOTA_OFF", "1")]);
    assert!(!p.ok && p.changes().is_empty(), "{:?}", p.calls);
    assert!(p.stderr.contains("not enforced"), "{}", p.stderr);

    // First pass: a project per home (stable ids from 1000), its tree tagged, its limit set.
    let p = n.pass();
    assert!(p.ok, "{}", p.stderr);
    let (ana, bob, cy, archive) = (
        n.id("hubdesk-ana"),
        n.id("hubdesk-bob"),
        n.id("hubdesk-cy"),
        n.id("hubdesk_archive"),
    );
    let mut ids = vec![ana, bob, cy, archive];
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "one project each");
    assert!(ids.iter().all(|i| *i >= 1000));
    for (name, id, bytes) in [
        ("ana", ana, 5 * GIB),
        ("bob", bob, 10 * GIB),
        ("cy", cy, 5 * GIB),
    ] {
        let home = n.export.join(name);
        assert!(
            p.calls
                .iter()
                .any(|c| c.contains(&format!("project -s -p {} {id}", home.display()))),
            "{name}: {:?}",
            p.calls
        );
        assert!(
            p.calls
                .iter()
                .any(|c| c.contains(&format!("limit -p bhard={bytes} {id}"))),
            "{name}: {:?}",
            p.calls
        );
        for (path, tag) in n.tags_below(&home) {
            let is_dir = std::fs::symlink_metadata(&path).unwrap().is_dir();
            assert_eq!(tag, Some((id, is_dir)), "{}", path.display());
        }
    }
    assert!(p
        .calls
        .iter()
        .any(|c| c.contains(&format!("limit -p bhard={} {archive}", 100 * GIB))));
    // hubdesk's project names, and no /etc/projects whose paths would be walked as well.
    assert!(p
        .calls
        .iter()
        .filter(|c| c.contains("project -s") || c.contains("limit "))
        .all(|c| c.contains("-D /dev/null -P ")));
    // The export root, the archive and its per-user directories are never tagged: renames
    // into them stay allowed whatever the project.
    assert_eq!(n.tag(&n.export), None);
    assert_eq!(n.tag(&n.export.join(".archive")), None);

    // Second pass, same list: nothing changes, the ids stay.
    let projid = n.state("projid");
    let p = n.pass();
    assert!(p.ok, "{}", p.stderr);
    assert!(p.changes().is_empty(), "{:?}", p.changes());
    assert_eq!(n.state("projid"), projid);

    // One override changes: only that home is limited again.
    n.homes
        .set_quota(&actor, &u("ana"), Some(StorageLimit::gib(1)))
        .await
        .unwrap();
    let p = n.pass();
    assert!(p.ok, "{}", p.stderr);
    assert_eq!(p.changes().len(), 1, "{:?}", p.changes());
    assert!(p.changes()[0].contains(&format!("limit -p bhard={GIB} {ana}")));

    // A reset: the old home goes to the archive and is re-tagged to the archive's project;
    // the fresh home is a new inode and is tagged as ana's.
    std::fs::write(n.export.join("ana/work.py"), "x = 1").unwrap();
    symlink(n.export.join("bob"), n.export.join("ana/bobs")).unwrap();
    let reset = n
        .homes
        .reset(&u("ana"), ResetScope::All, "broken", &actor)
        .await
        .unwrap();
    let entry = n.archive("ana").join(reset.archive.unwrap().as_str());
    assert!(
        n.rename_allowed(&entry, &n.archive("ana")),
        "the reset's rename into the archive"
    );
    let p = n.pass();
    assert!(p.ok, "{}", p.stderr);
    assert!(
        p.changes()
            .iter()
            .any(|c| c.contains(&format!("project -s -p {} {archive}", entry.display()))),
        "{:?}",
        p.changes()
    );
    assert!(
        p.changes().iter().any(|c| c.contains(&format!(
            "project -s -p {} {ana}",
            n.export.join("ana").display()
        ))),
        "{:?}",
        p.changes()
    );
    for (path, tag) in n.tags_below(&entry) {
        assert_eq!(tag.map(|t| t.0), Some(archive), "{}", path.display());
    }
    assert_eq!(n.tag(&n.export.join("ana")), Some((ana, true)));
    assert_eq!(n.tag(&n.archive("ana")), None);
    assert!(n.pass().changes().is_empty(), "settled");

    // A restore: the archived home comes back (with the archive's project) and is tagged as
    // ana's again; the home it replaced becomes an archive entry of the archive's project.
    let restored = n
        .homes
        .restore(
            &u("ana"),
            &hubdesk::homes::ArchiveId::parse(entry.file_name().unwrap().to_str().unwrap())
                .unwrap(),
            &actor,
        )
        .await
        .unwrap();
    assert!(
        n.rename_allowed(&n.export.join("ana"), &n.export),
        "restore renames into the root"
    );
    let before = n.archive("ana").join(restored.archive.unwrap().as_str());
    let p = n.pass();
    assert!(p.ok, "{}", p.stderr);
    assert_eq!(
        std::fs::read_to_string(n.export.join("ana/work.py")).unwrap(),
        "x = 1"
    );
    for (path, tag) in n.tags_below(&n.export.join("ana")) {
        assert_eq!(tag.map(|t| t.0), Some(ana), "{}", path.display());
    }
    for (path, tag) in n.tags_below(&before) {
        assert_eq!(tag.map(|t| t.0), Some(archive), "{}", path.display());
    }
    assert!(
        !n.state("tagged")
            .contains(entry.file_name().unwrap().to_str().unwrap()),
        "a restored entry is forgotten: {}",
        n.state("tagged")
    );

    // An environment reset: its archive keeps bob's project (no inherit flag on top), so
    // restoring it renames .local back into bob's home, which XFS allows only within one project.
    std::fs::create_dir_all(n.export.join("bob/.local/lib")).unwrap();
    std::fs::write(n.export.join("bob/.local/lib/pkg.py"), "y = 2").unwrap();
    assert!(n.pass().ok);
    let env = n
        .homes
        .reset(&u("bob"), ResetScope::Environment, "pip mess", &actor)
        .await
        .unwrap();
    let env_entry = n.archive("bob").join(env.archive.clone().unwrap().as_str());
    let p = n.pass();
    assert!(p.ok, "{}", p.stderr);
    assert!(
        p.changes()
            .iter()
            .any(|c| c.contains(&format!("chproj -R {bob}"))
                && c.contains(env_entry.to_str().unwrap())),
        "{:?}",
        p.changes()
    );
    assert_eq!(
        n.tag(&env_entry),
        Some((bob, false)),
        "no inherit flag on the entry"
    );
    assert!(
        n.rename_allowed(&env_entry.join(".local"), &n.export.join("bob")),
        "the environment restore's rename into the home"
    );
    n.homes
        .restore(&u("bob"), &env.archive.unwrap(), &actor)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(n.export.join("bob/.local/lib/pkg.py")).unwrap(),
        "y = 2"
    );
    // Negative control of the rename rule: an environment archive re-tagged to the archive's
    // project (as a whole home is) could not go back.
    std::fs::create_dir_all(n.export.join("cy/.cache")).unwrap();
    let cy_env = n
        .homes
        .reset(&u("cy"), ResetScope::Environment, "", &actor)
        .await
        .unwrap();
    let cy_entry = n.archive("cy").join(cy_env.archive.unwrap().as_str());
    assert!(n.pass().ok);
    assert_eq!(n.tag(&cy_entry.join(".cache")).map(|t| t.0), Some(cy));
    std::fs::write(
        n.db.join(
            std::fs::metadata(cy_entry.join(".cache"))
                .unwrap()
                .ino()
                .to_string(),
        ),
        format!("{archive} P"),
    )
    .unwrap();
    assert!(!n.rename_allowed(&cy_entry.join(".cache"), &n.export.join("cy")));
}

#[tokio::test]
async fn quota_node_script_parses_the_list_strictly() {
    let n = node().await;
    let actor = Actor::System;
    for name in ["ana", "bob"] {
        n.homes.create(&u(name), &actor).await.unwrap();
    }
    std::fs::create_dir(n.export.join("Not-a-user")).unwrap();
    // Bad lines are refused one by one (never echoed); the rest applies; an unlisted home gets
    // the default.
    n.write_raw_list(
        "# a comment\n\
         default 2147483648\n\
         archive ../etc 5\n\
         home ana 1073741824\n\
         home ../../root 5\n\
         home Bob 5\n\
         home ana 99\n\
         home cy -5\n\
         home dee 1e9\n\
         home eve 017592186044416\n\
         home fay 17592186044417\n\
         rm -rf / now\n\
         end 8\n",
    );
    let p = n.pass();
    assert!(p.ok, "{}", p.stderr);
    for line in [5, 6, 7, 8, 9, 10, 11, 12] {
        assert!(
            p.stderr.contains(&format!("line {line}:")),
            "line {line}: {}",
            p.stderr
        );
    }
    assert!(p.stderr.contains("line 3: archive"), "{}", p.stderr);
    for leaked in ["../../root", "rm -rf", "../etc", "1e9"] {
        assert!(!p.stderr.contains(leaked), "{leaked} echoed: {}", p.stderr);
    }
    let (ana, bob) = (n.id("hubdesk-ana"), n.id("hubdesk-bob"));
    let limits: Vec<&str> = p
        .changes()
        .into_iter()
        .filter(|c| c.contains("limit "))
        .collect();
    assert_eq!(limits.len(), 2, "{limits:?}");
    assert!(limits
        .iter()
        .any(|c| c.contains(&format!("bhard=1073741824 {ana}"))));
    assert!(
        limits
            .iter()
            .any(|c| c.contains(&format!("bhard=2147483648 {bob}"))),
        "bob: default"
    );
    assert!(!n.state("projid").contains("Not-a-user"));
    assert!(!p.calls.iter().any(|c| c.contains("Not-a-user")));

    // Whole lists are refused: no end record, a wrong count, a record after the end, no
    // default, a symlink in place of the list. Nothing changes.
    let before = n.state("limits");
    for (what, text) in [
        ("torn", "default 1\nhome ana 5\n"),
        ("count", "default 1048576\nhome ana 1048576\nend 2\n"),
        ("after end", "default 1048576\nend 0\nhome ana 1048576\n"),
        ("no default", "home ana 1048576\nend 1\n"),
    ] {
        n.write_raw_list(text);
        let p = n.pass();
        assert!(!p.ok, "{what}: {}", p.stderr);
        assert!(p.changes().is_empty(), "{what}: {:?}", p.changes());
        assert!(p.stderr.contains("refused"), "{what}: {}", p.stderr);
    }
    std::fs::remove_file(n.export.join(QUOTA_LIST)).unwrap();
    symlink("/etc/passwd", n.export.join(QUOTA_LIST)).unwrap();
    let p = n.pass();
    assert!(!p.ok && p.changes().is_empty(), "{}", p.stderr);
    assert!(p.stderr.contains("not a regular file"), "{}", p.stderr);
    assert_eq!(n.state("limits"), before);
    // A good list again: only ana's limit moves (to the new default).
    std::fs::remove_file(n.export.join(QUOTA_LIST)).unwrap();
    n.write_raw_list("default 3221225472\nhome bob 2147483648\nend 1\n");
    let p = n.pass();
    assert!(p.ok, "{}", p.stderr);
    assert_eq!(
        p.changes(),
        [format!(
            "xfs_quota -D /dev/null -P {}/projid -x -c limit -p bhard=3221225472 {ana} {}",
            n.mount.join(".hubdesk-quota").display(),
            n.mount.display()
        )
        .as_str()]
    );
}

// ---- the same on a real XFS ------------------------------------------------------------

/// A small XFS in a loop file, mounted for one test (this kernel has XFS but no quotas: project
/// ids and the inherit flag are real, so is XFS's rename rule; only limits are not enforced).
struct RealXfs {
    dir: PathBuf,
    mnt: PathBuf,
}

impl Drop for RealXfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.exists())
}

/// `None` (with a loud line) where this machine cannot make one: not root, no mkfs.xfs, no loop.
fn real_xfs() -> Option<RealXfs> {
    let skip = |why: &str| {
        eprintln!("SKIPPED quota_node real XFS: {why}");
        None
    };
    if !Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
    {
        return skip("not root (loop mounts)");
    }
    if which("mkfs.xfs").is_none() || which("xfs_io").is_none() || which("xfs_quota").is_none() {
        return skip("xfsprogs missing");
    }
    let dir = std::env::temp_dir().join(format!("hubdesk-xfs-{}", uuid::Uuid::new_v4().simple()));
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let disk = dir.join("disk");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(320 << 20)
        .unwrap();
    let xfs = RealXfs { dir, mnt };
    let ok = |c: &mut Command| c.output().is_ok_and(|o| o.status.success());
    if !ok(Command::new("mkfs.xfs").arg("-q").arg(&disk)) {
        return skip("mkfs.xfs failed");
    }
    if !ok(Command::new("mount")
        .arg("-o")
        .arg("loop")
        .arg(&disk)
        .arg(&xfs.mnt))
    {
        return skip("mount -o loop failed (no loop devices here?)");
    }
    Some(xfs)
}

/// The real tool's view of `path`: (project id, inherit flag).
fn real_tag(path: &Path) -> (u32, bool) {
    let io = which("xfs_io").unwrap();
    let out = |cmd: &str| {
        String::from_utf8(
            Command::new(&io)
                .args(["-r", "-c", cmd])
                .arg(path)
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
    };
    let id = out("lsproj")
        .trim()
        .strip_prefix("projid = ")
        .unwrap_or_else(|| panic!("lsproj of {}", path.display()))
        .parse()
        .unwrap();
    (id, out("lsattr -v").contains("proj-inherit"))
}

#[tokio::test]
async fn quota_node_script_on_a_real_xfs_keeps_every_rename_of_hubdesk_legal() {
    let Some(xfs) = real_xfs() else { return };
    let n = node().await;
    // The homes root on the XFS; the real xfs_io and xfs_quota do the tagging. Only what needs
    // quotas is answered by the wrappers: `state -p` (enforcement on) and `limit` (recorded).
    let export = xfs.mnt.join("homes");
    std::fs::create_dir_all(&export).unwrap();
    let template = n.base.join("template");
    let mut config = HomesConfig {
        root: Some(export.clone()),
        template: Some(template),
        ..HomesConfig::default()
    };
    config.resolve(&n.base).unwrap();
    let homes = Homes::open(&config, n.app.pool.clone()).await.unwrap();
    let wrap = |tool: &str, intercept: &str| {
        format!(
            "#!/bin/sh\necho \"{tool} $*\" >> \"$FAKE_LOG\"\ncase \"$*\" in\n{intercept}\nesac\nexec {} \"$@\"\n",
            which(tool).unwrap().display()
        )
    };
    std::fs::write(
        n.bin.join("xfs_quota"),
        wrap(
            "xfs_quota",
            "*'-c state -p'*) echo '  Enforcement: ON'; exit 0 ;;\n*'-c limit '*) exit 0 ;;",
        ),
    )
    .unwrap();
    std::fs::write(n.bin.join("xfs_io"), wrap("xfs_io", "'') ;;")).unwrap();
    std::fs::remove_file(n.bin.join("mountpoint")).unwrap();
    let pass = || {
        let path = format!(
            "{}:{}",
            n.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("sh")
            .arg(SCRIPT)
            .env("PATH", path)
            .env("HUBDESK_QUOTA_MOUNT", &xfs.mnt)
            .env("HUBDESK_QUOTA_EXPORT", &export)
            .env("FAKE_LOG", &n.log)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        stderr
    };
    let projid = |name: &str| -> u32 {
        std::fs::read_to_string(xfs.mnt.join(".hubdesk-quota/projid"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap()
            .parse()
            .unwrap()
    };
    let actor = Actor::System;
    for name in ["ana", "bob"] {
        n.app.create_student(&format!("{name} x"), name, None).await;
        homes.create(&u(name), &actor).await.unwrap();
    }
    std::fs::write(export.join("ana/work.py"), "x = 1").unwrap();
    homes.write_quota_list().await.unwrap();
    pass();
    let (ana, bob, archive) = (
        projid("hubdesk-ana"),
        projid("hubdesk-bob"),
        projid("hubdesk_archive"),
    );
    assert_eq!(real_tag(&export.join("ana")), (ana, true));
    assert_eq!(real_tag(&export.join("ana/work.py")), (ana, false));
    assert_eq!(real_tag(&export.join("ana/notebooks")), (ana, true));
    assert!(!real_tag(&export).1 && !real_tag(&export.join(".archive")).1);

    // Reset and restore: real renames out of and back into the tagged world.
    let reset = homes
        .reset(&u("ana"), ResetScope::All, "", &actor)
        .await
        .unwrap();
    let entry = export
        .join(".archive/ana")
        .join(reset.archive.clone().unwrap().as_str());
    pass();
    assert_eq!(real_tag(&entry.join("work.py")).0, archive);
    assert_eq!(
        real_tag(&export.join("ana/notebooks/intro.ipynb")),
        (ana, false)
    );
    homes
        .restore(&u("ana"), &reset.archive.unwrap(), &actor)
        .await
        .unwrap();
    pass();
    assert_eq!(real_tag(&export.join("ana/work.py")), (ana, false));
    // What the student writes now is charged to ana (the inherit flag is back).
    std::fs::write(export.join("ana/new.py"), "y").unwrap();
    assert_eq!(real_tag(&export.join("ana/new.py")).0, ana);

    // An environment archive and its restore: .local goes back into bob's tagged home.
    std::fs::create_dir_all(export.join("bob/.local/lib")).unwrap();
    std::fs::write(export.join("bob/.local/lib/pkg.py"), "z").unwrap();
    pass();
    let env = homes
        .reset(&u("bob"), ResetScope::Environment, "", &actor)
        .await
        .unwrap();
    pass();
    let env_entry = export
        .join(".archive/bob")
        .join(env.archive.clone().unwrap().as_str());
    assert_eq!(real_tag(&env_entry.join(".local/lib/pkg.py")).0, bob);
    assert!(!real_tag(&env_entry).1, "no inherit flag on the entry");
    homes
        .restore(&u("bob"), &env.archive.unwrap(), &actor)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(export.join("bob/.local/lib/pkg.py")).unwrap(),
        "z"
    );

    // Negative controls, by the kernel itself: an environment item of the archive's project
    // cannot go back into the home (why environment archives stay the student's), and a reset
    // into a per-user archive directory with the inherit flag fails (why the node never tags
    // those).
    std::fs::create_dir_all(export.join("bob/.cache")).unwrap();
    let cache = homes
        .reset(&u("bob"), ResetScope::Environment, "", &actor)
        .await
        .unwrap();
    let cache_entry = export
        .join(".archive/bob")
        .join(cache.archive.clone().unwrap().as_str());
    let io = which("xfs_io").unwrap();
    assert!(Command::new(&io)
        .args(["-r", "-c", &format!("chproj -R {archive}")])
        .arg(&cache_entry)
        .status()
        .unwrap()
        .success());
    let err = homes
        .restore(&u("bob"), &cache.archive.unwrap(), &actor)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cross-device"), "{err}");
    let ana_dir = export.join(".archive/ana");
    assert!(Command::new(&io)
        .args(["-r", "-c", "chproj 4242", "-c", "chattr +P"])
        .arg(&ana_dir)
        .status()
        .unwrap()
        .success());
    let err = homes
        .reset(&u("ana"), ResetScope::All, "", &actor)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cross-device"), "{err}");
    assert!(export.join("ana/work.py").exists(), "the home stayed");
}
