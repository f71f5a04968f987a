//! Homes on a real filesystem (a temp homes root; as root, so chown is real) against a real
//! PostgreSQL: template, ownership and modes; reset is a rename (same inode in the archive);
//! environment reset; restore and undo; planted symlinks and a home replaced by a symlink are
//! never followed; EXDEV refused at open; one operation per home; a crash at every step (and a
//! real `kill -9`) recovered from the journal; purge removes only old archives; the jobs.
use std::{
    collections::BTreeMap,
    os::unix::fs::{symlink, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use hubdesk::{
    config::HomesConfig,
    db,
    domain::{Actor, Username},
    homes::{
        jobs as homes_jobs, ArchiveId, BeforeHomeChange, CreateManyJob, FailAction, FailWhen,
        Failpoint, Homes, HomesError, ResetJob, ResetScope, RestoreJob,
    },
    jobs::{Backoff, BoxFuture, JobError, JobState, Runner, RunnerOptions},
};
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::helpers::{spawn_app_with_state, TestApp};

const UID: u32 = 1000;
const GID: u32 = 100;
const PATIENCE: Duration = Duration::from_secs(30);

fn u(name: &str) -> Username {
    Username::parse(name).unwrap()
}

fn connie() -> Actor {
    Actor::User(u("connie"))
}

/// A test's own homes root, template and archive under /tmp, removed at the end (after any
/// mount inside is unmounted). `std::fs::remove_dir_all` does not follow symlinks.
struct Fixture {
    app: TestApp,
    base: PathBuf,
    root: PathBuf,
    config: HomesConfig,
    homes: Homes,
    mounts: Vec<PathBuf>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for m in self.mounts.iter().rev() {
            let _ = Command::new("umount").arg(m).status();
        }
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// The template: a readme (0644), a script (0755), a notebook in a folder, a relative link, a
/// dangling absolute link, and a link to /etc (a chown or copy that followed it would change
/// /etc).
fn make_template(dir: &Path) {
    std::fs::create_dir_all(dir.join("notebooks")).unwrap();
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::write(dir.join("README.md"), "# Welcome to camp\n").unwrap();
    std::fs::set_permissions(dir.join("README.md"), PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::write(dir.join("notebooks/intro.ipynb"), "{\"cells\": []}\n").unwrap();
    std::fs::write(dir.join("scripts/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(dir.join("scripts/run.sh"), PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::set_permissions(dir.join("notebooks"), PermissionsExt::from_mode(0o700)).unwrap();
    symlink("README.md", dir.join("readme-link")).unwrap();
    symlink("/srv/data/camp", dir.join("data")).unwrap();
    symlink("/etc", dir.join("etc-link")).unwrap();
}

async fn fixture() -> Fixture {
    // The app's own job runner would claim this test's homes jobs and run them on the app's
    // homes root: these tests run their own runners on their own root.
    let app = spawn_app_with_state(|_| {}, |s| s.job_handlers.clear()).await;
    let base =
        std::env::temp_dir().join(format!("hubdesk-homes-{}", uuid::Uuid::new_v4().simple()));
    let root = base.join("homes");
    std::fs::create_dir_all(&root).unwrap();
    make_template(&base.join("template"));
    let mut config = HomesConfig {
        root: Some(root.clone()),
        template: Some(base.join("template")),
        uid: UID,
        gid: GID,
        ..HomesConfig::default()
    };
    config.resolve(&base).unwrap();
    let homes = Homes::open(&config, app.pool.clone()).await.unwrap();
    Fixture {
        app,
        base,
        root,
        config,
        homes,
        mounts: Vec::new(),
    }
}

impl Fixture {
    fn home(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn archive(&self, name: &str, id: &ArchiveId) -> PathBuf {
        self.root.join(".archive").join(name).join(id.as_str())
    }

    fn archive_entries(&self, name: &str) -> Vec<String> {
        let dir = self.root.join(".archive").join(name);
        let mut out: Vec<String> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect(),
            Err(_) => Vec::new(),
        };
        out.sort();
        out
    }

    /// Temporary names left in the root (there must be none after any operation).
    fn temps(&self) -> Vec<String> {
        std::fs::read_dir(&self.root)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            // The NFS node's quota list is a file hubdesk keeps there, not a temporary name.
            .filter(|n| n.starts_with(".hubdesk-") && n != hubdesk::homes::quota::QUOTA_LIST)
            .collect()
    }

    async fn other_instance(&self) -> Homes {
        Homes::open(&self.config, self.app.pool.clone())
            .await
            .unwrap()
    }

    async fn running_ops(&self) -> i64 {
        self.app
            .count("SELECT count(*) FROM home_ops WHERE state = 'running'")
            .await
    }

    async fn audits(&self, action: &str, target: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = $1 AND target = $2")
            .bind(action)
            .bind(target)
            .fetch_one(&self.app.pool)
            .await
            .unwrap()
    }

    async fn create(&self, name: &str) {
        assert!(self.homes.create(&u(name), &connie()).await.unwrap());
    }

    async fn reset_all(&self, name: &str, reason: &str) -> ArchiveId {
        self.homes
            .reset(&u(name), ResetScope::All, reason, &connie())
            .await
            .unwrap()
            .archive
            .expect("an archive entry")
    }
}

fn meta(p: &Path) -> std::fs::Metadata {
    std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn ino(p: &Path) -> (u64, u64) {
    let m = meta(p);
    (m.dev(), m.ino())
}

fn owner_mode(p: &Path) -> (u32, u32, u32) {
    let m = meta(p);
    (m.uid(), m.gid(), m.mode() & 0o7777)
}

/// uid, gid, mode, size, content (files), inode.
type Entry = (u32, u32, u32, u64, Option<Vec<u8>>, u64);

/// Every entry below `dir` with owner, mode, size and (for files) content: what "untouched"
/// means for another student's home. Never follows symlinks.
fn snapshot(dir: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let m = meta(&d);
        let rel = d.strip_prefix(dir).unwrap().display().to_string();
        let content = if m.is_file() {
            Some(std::fs::read(&d).unwrap())
        } else {
            None
        };
        out.insert(rel, (m.uid(), m.gid(), m.mode(), m.len(), content, m.ino()));
        if m.is_dir() {
            for e in std::fs::read_dir(&d).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out
}

/// /etc as far as a wrong chown or move would show it.
fn etc_state() -> Vec<(String, u32, u32, u32, u64, Vec<u8>)> {
    ["/etc", "/etc/passwd", "/etc/hostname", "/etc/hosts"]
        .iter()
        .filter(|p| Path::new(p).exists())
        .map(|p| {
            let m = meta(Path::new(p));
            let content = if m.is_file() {
                std::fs::read(p).unwrap()
            } else {
                Vec::new()
            };
            (p.to_string(), m.uid(), m.gid(), m.mode(), m.ino(), content)
        })
        .collect()
}

fn write(p: &Path, text: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn assert_fresh_template(home: &Path) {
    assert_eq!(
        owner_mode(home),
        (UID, GID, 0o755),
        "home {}",
        home.display()
    );
    assert_eq!(
        std::fs::read_to_string(home.join("README.md")).unwrap(),
        "# Welcome to camp\n"
    );
    assert_eq!(owner_mode(&home.join("README.md")), (UID, GID, 0o644));
    assert_eq!(owner_mode(&home.join("scripts/run.sh")), (UID, GID, 0o755));
    // Directories are 0755 whatever the template says (its notebooks/ is 0700).
    assert_eq!(owner_mode(&home.join("notebooks")), (UID, GID, 0o755));
    assert_eq!(owner_mode(&home.join("notebooks/intro.ipynb")).0, UID);
    for (link, target) in [
        ("readme-link", "README.md"),
        ("data", "/srv/data/camp"),
        ("etc-link", "/etc"),
    ] {
        let m = meta(&home.join(link));
        assert!(m.file_type().is_symlink(), "{link} copied as a link");
        assert_eq!((m.uid(), m.gid()), (UID, GID), "{link} is lchown'ed");
        assert_eq!(
            std::fs::read_link(home.join(link)).unwrap(),
            Path::new(target)
        );
    }
}

#[tokio::test]
async fn homes_create_lays_the_template_owned_by_the_notebook_user() {
    let etc = etc_state();
    let f = fixture().await;
    let ana = u("ana");
    assert!(!f.homes.exists(&ana).await.unwrap());
    assert!(f.homes.create(&ana, &connie()).await.unwrap());
    assert!(f.homes.exists(&ana).await.unwrap());
    assert_fresh_template(&f.home("ana"));
    assert_eq!(
        etc_state(),
        etc,
        "the template's link to /etc was not followed"
    );

    // Idempotent: an existing home, with work in it, is left alone.
    write(&f.home("ana").join("work.py"), "print(1)\n");
    std::fs::remove_file(f.home("ana").join("README.md")).unwrap();
    assert!(!f.homes.create(&ana, &connie()).await.unwrap());
    assert!(f.home("ana").join("work.py").exists());
    assert!(!f.home("ana").join("README.md").exists());

    assert_eq!(f.audits("home.create", "ana").await, 1);
    assert_eq!(
        f.app
            .count("SELECT count(*) FROM home_ops WHERE kind = 'create' AND state = 'done'")
            .await,
        1
    );
    assert!(f.temps().is_empty(), "{:?}", f.temps());
}

#[tokio::test]
async fn homes_reset_renames_the_home_into_the_archive_and_lays_a_fresh_template() {
    let f = fixture().await;
    f.create("ana").await;
    let work = f.home("ana").join("notebooks/work.ipynb");
    write(&work, "{\"my\": \"work\"}");
    std::fs::set_permissions(&work, PermissionsExt::from_mode(0o600)).unwrap();
    let before = ino(&work);
    let home_before = ino(&f.home("ana"));

    let id = f.reset_all("ana", "Wrong kernel").await;
    assert!(id.as_str().ends_with("-wrong-kernel"), "{id}");
    let archived = f.archive("ana", &id);
    // The same inodes: the home was renamed, nothing copied.
    assert_eq!(ino(&archived), home_before);
    assert_eq!(ino(&archived.join("notebooks/work.ipynb")), before);
    assert_eq!(owner_mode(&archived.join("notebooks/work.ipynb")).2, 0o600);
    // A fresh template in place, without the work.
    assert_fresh_template(&f.home("ana"));
    assert!(!f.home("ana").join("notebooks/work.ipynb").exists());
    assert_ne!(ino(&f.home("ana")), home_before);
    // The archive's own directories are root's and closed.
    assert_eq!(owner_mode(&f.root.join(".archive/ana")), (0, 0, 0o700));

    let list = f.homes.archives(&u("ana")).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, id);
    assert_eq!(list[0].reason, "Wrong kernel");
    assert_eq!(list[0].actor, "connie");
    assert_eq!(list[0].scope, ResetScope::All);
    assert!(list[0].bytes > 0);
    let json = serde_json::to_value(&list[0]).unwrap();
    for key in ["id", "created_at", "reason", "actor", "bytes"] {
        assert!(json.get(key).is_some(), "{key} in {json}");
    }
    assert_eq!(f.audits("home.reset", "ana").await, 1);
    assert!(f.temps().is_empty());

    // Reset of a home that is not there.
    let err = f
        .homes
        .reset(&u("nobody-here"), ResetScope::All, "x", &connie())
        .await
        .unwrap_err();
    assert!(matches!(err, HomesError::NotFound(_)), "{err}");
    assert_eq!(err.status_code(), 404);
}

#[tokio::test]
async fn homes_environment_reset_keeps_the_work_and_can_be_undone() {
    let f = fixture().await;
    f.create("ana").await;
    let home = f.home("ana");
    write(&home.join("project/analysis.ipynb"), "work");
    write(
        &home.join(".local/lib/python3.12/site-packages/broken.py"),
        "raise",
    );
    write(
        &home.join(".config/pip/pip.conf"),
        "[global]\nindex-url = http://bad\n",
    );
    write(&home.join(".config/git/config"), "[user]\n");
    write(&home.join(".jupyter/jupyter_server_config.py"), "c = 1");
    write(&home.join(".bashrc"), "export X=1\n");
    let local = ino(&home.join(".local"));

    let out = f
        .homes
        .reset(&u("ana"), ResetScope::Environment, "broken pip", &connie())
        .await
        .unwrap();
    let id = out.archive.expect("an entry");
    let entry = f.archive("ana", &id);
    assert_eq!(ino(&entry.join(".local")), local, "moved, not copied");
    assert!(entry.join(".config/pip/pip.conf").exists());
    assert!(entry.join(".jupyter/jupyter_server_config.py").exists());
    assert!(!home.join(".local").exists());
    assert!(!home.join(".config/pip").exists());
    assert!(!home.join(".jupyter").exists());
    // The work, other config and the shell's files stay.
    assert!(home.join("project/analysis.ipynb").exists());
    assert!(home.join(".config/git/config").exists());
    assert!(home.join(".bashrc").exists());
    assert!(home.join("README.md").exists());
    let list = f.homes.archives(&u("ana")).await.unwrap();
    assert_eq!(list[0].scope, ResetScope::Environment);
    assert_eq!(f.audits("home.reset_environment", "ana").await, 1);

    // The server comes back and makes a new environment; restoring the archived one swaps
    // them, and the replaced environment is archived in turn.
    write(&home.join(".local/share/new.txt"), "new");
    let back = f.homes.restore(&u("ana"), &id, &connie()).await.unwrap();
    assert_eq!(ino(&home.join(".local")), local);
    assert!(home.join(".config/pip/pip.conf").exists());
    assert!(home.join("project/analysis.ipynb").exists());
    let replaced = back.archive.expect("the replaced environment");
    assert!(f
        .archive("ana", &replaced)
        .join(".local/share/new.txt")
        .exists());
    assert!(!entry.exists(), "the restored entry left the archive");
    let list = f.homes.archives(&u("ana")).await.unwrap();
    assert_eq!(list.iter().map(|a| &a.id).collect::<Vec<_>>(), [&replaced]);
    assert_eq!(list[0].reason, "before-restore");

    // Reset it again (the restored .local and .config/pip go), then once more: nothing left
    // to move, so no archive entry.
    let again = f
        .homes
        .reset(&u("ana"), ResetScope::Environment, "again", &connie())
        .await
        .unwrap();
    assert!(again.archive.is_some());
    assert!(home.join("project/analysis.ipynb").exists());
    let nothing = f
        .homes
        .reset(&u("ana"), ResetScope::Environment, "again", &connie())
        .await
        .unwrap();
    assert_eq!(nothing.archive, None);
}

#[tokio::test]
async fn homes_restore_brings_a_file_back_and_archives_the_replaced_home() {
    let f = fixture().await;
    f.create("ana").await;
    write(&f.home("ana").join("a.txt"), "first week");
    let a = ino(&f.home("ana").join("a.txt"));
    let first = f.reset_all("ana", "reset").await;
    write(&f.home("ana").join("b.txt"), "second week");
    let b = ino(&f.home("ana").join("b.txt"));

    let out = f.homes.restore(&u("ana"), &first, &connie()).await.unwrap();
    assert_eq!(out.restored, first);
    assert_eq!(ino(&f.home("ana").join("a.txt")), a);
    assert!(!f.home("ana").join("b.txt").exists());
    let replaced = out.archive.expect("the replaced home is archived");
    assert_eq!(ino(&f.archive("ana", &replaced).join("b.txt")), b);
    assert!(!f.archive("ana", &first).exists());
    let list = f.homes.archives(&u("ana")).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (&list[0].id, list[0].reason.as_str()),
        (&replaced, "before-restore")
    );
    assert_eq!(f.audits("home.restore", "ana").await, 1);

    // Undo: restore the replaced home.
    let undo = f
        .homes
        .restore(&u("ana"), &replaced, &connie())
        .await
        .unwrap();
    assert_eq!(ino(&f.home("ana").join("b.txt")), b);
    assert_eq!(
        ino(&f
            .archive("ana", undo.archive.as_ref().unwrap())
            .join("a.txt")),
        a
    );

    // A missing id, and ids that are not ids.
    let ghost = ArchiveId::parse("20200101T000000Z-reset").unwrap();
    let err = f
        .homes
        .restore(&u("ana"), &ghost, &connie())
        .await
        .unwrap_err();
    assert!(matches!(err, HomesError::NotFound(_)), "{err}");
    for bad in ["../bob", "..", "20200101T000000Z-../../etc", "/etc"] {
        assert!(ArchiveId::parse(bad).is_err(), "{bad}");
    }
    // Archive names are per student: bob cannot restore ana's archive.
    f.create("bob").await;
    let err = f
        .homes
        .restore(&u("bob"), &replaced, &connie())
        .await
        .unwrap_err();
    assert!(matches!(err, HomesError::NotFound(_)), "{err}");
    assert!(f.archive("ana", undo.archive.as_ref().unwrap()).exists());
}

#[tokio::test]
async fn homes_symlinks_planted_inside_a_home_are_never_followed() {
    let etc = etc_state();
    let f = fixture().await;
    f.create("ana").await;
    f.create("bob").await;
    // bob's work: 4 MiB that ana's usage must not count.
    let big = vec![7u8; 4 << 20];
    std::fs::write(f.home("bob").join("secret.bin"), &big).unwrap();
    std::fs::set_permissions(
        f.home("bob").join("secret.bin"),
        PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let bob = snapshot(&f.home("bob"));

    let home = f.home("ana");
    symlink("/etc", home.join("x")).unwrap();
    symlink("../bob", home.join("y")).unwrap();
    symlink("/etc/passwd", home.join("passwd")).unwrap();
    // Environment items that are links, or below a link.
    symlink("/etc", home.join(".local")).unwrap();
    symlink("../bob", home.join(".config")).unwrap();
    symlink(f.home("bob"), home.join(".cache")).unwrap();

    let usage = f.homes.usage(&u("ana")).await.unwrap();
    assert!(usage < 1 << 20, "links counted as themselves: {usage}");
    let bob_usage = f.homes.usage(&u("bob")).await.unwrap();
    assert!(bob_usage >= 4 << 20, "{bob_usage}");

    let env = f
        .homes
        .reset(&u("ana"), ResetScope::Environment, "links", &connie())
        .await
        .unwrap()
        .archive
        .unwrap();
    let entry = f.archive("ana", &env);
    assert!(
        meta(&entry.join(".local")).file_type().is_symlink(),
        "the link moved, not /etc"
    );
    assert!(meta(&entry.join(".cache")).file_type().is_symlink());
    assert!(
        !entry.join(".config").exists(),
        ".config/pip below a link is not there"
    );
    assert!(
        meta(&home.join(".config")).file_type().is_symlink(),
        "left alone"
    );

    let all = f.reset_all("ana", "links").await;
    assert!(meta(&f.archive("ana", &all).join("y"))
        .file_type()
        .is_symlink());
    let list = f.homes.archives(&u("ana")).await.unwrap();
    assert!(list.iter().all(|a| a.bytes < 1 << 20), "{list:?}");
    f.homes.restore(&u("ana"), &all, &connie()).await.unwrap();
    assert!(meta(&f.home("ana").join("x")).file_type().is_symlink());
    let _ = f.homes.usage(&u("ana")).await.unwrap();

    assert_eq!(snapshot(&f.home("bob")), bob, "bob's home untouched");
    assert_eq!(etc_state(), etc, "/etc untouched");
}

#[tokio::test]
async fn homes_a_home_replaced_by_a_symlink_is_refused_or_archived_as_the_link() {
    let etc = etc_state();
    let f = fixture().await;
    f.create("ana").await;
    f.create("bob").await;
    write(&f.home("bob").join("work.txt"), "bob's");
    let bob = snapshot(&f.home("bob"));
    let bob_ino = ino(&f.home("bob"));
    // ana's home becomes a link to bob's (and, separately, a file for carol).
    std::fs::rename(f.home("ana"), f.base.join("ana-moved")).unwrap();
    symlink("bob", f.home("ana")).unwrap();
    std::fs::write(f.home("carol"), "not a directory").unwrap();
    let ana = u("ana");

    for err in [
        f.homes.exists(&ana).await.unwrap_err(),
        f.homes.usage(&ana).await.unwrap_err(),
        f.homes.create(&ana, &connie()).await.unwrap_err(),
        f.homes
            .reset(&ana, ResetScope::Environment, "x", &connie())
            .await
            .unwrap_err(),
        f.homes.create(&u("carol"), &connie()).await.unwrap_err(),
    ] {
        assert!(matches!(err, HomesError::UnsafePath(_)), "{err}");
    }
    assert_eq!(snapshot(&f.home("bob")), bob);

    // A reset of the whole home moves the link itself and lays a real home.
    let id = f.reset_all("ana", "link").await;
    let entry = f.archive("ana", &id);
    assert!(meta(&entry).file_type().is_symlink());
    assert_eq!(std::fs::read_link(&entry).unwrap(), Path::new("bob"));
    assert!(meta(&f.home("ana")).is_dir());
    assert_fresh_template(&f.home("ana"));
    assert_eq!(ino(&f.home("bob")), bob_ino);
    assert_eq!(snapshot(&f.home("bob")), bob, "bob's home untouched");
    let list = f.homes.archives(&ana).await.unwrap();
    assert!(
        list[0].bytes < 4096,
        "the link's own size: {}",
        list[0].bytes
    );
    assert_eq!(etc_state(), etc);
}

#[tokio::test]
async fn homes_names_that_are_paths_cannot_even_be_expressed() {
    for bad in [
        "..",
        "../bob",
        "a/b",
        ".archive",
        ".hubdesk-tmp-x",
        "Ana",
        "",
        "ana/..",
        "root",
    ] {
        assert!(Username::parse(bad).is_err(), "{bad:?}");
    }
    let json = serde_json::json!({"username": "ana", "archive": "../../etc"});
    let job: RestoreJob = serde_json::from_value(json).unwrap();
    assert!(ArchiveId::parse(&job.archive).is_err());
}

/// Mounts a tmpfs at `at` (as root), or says why not.
fn mount_tmpfs(at: &Path) -> Result<(), String> {
    std::fs::create_dir_all(at).unwrap();
    let out = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=16m",
            "hubdesk-test",
            at.to_str().unwrap(),
        ])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test]
async fn homes_open_refuses_an_archive_on_another_filesystem() {
    let mut f = fixture().await;
    let other = f.base.join("tmpfs");
    let archive = match mount_tmpfs(&other) {
        Ok(()) => {
            f.mounts.push(other.clone());
            other.join("archive")
        }
        Err(e) => {
            // No mount here: /dev/shm is another filesystem on most hosts.
            eprintln!("homes: cannot mount a tmpfs ({e}); testing with /dev/shm instead");
            let shm = PathBuf::from("/dev/shm").join(format!("hubdesk-{}", uuid::Uuid::new_v4()));
            assert_ne!(
                meta(Path::new("/dev/shm")).dev(),
                meta(&f.root).dev(),
                "no second filesystem to test EXDEV with"
            );
            shm
        }
    };
    let config = HomesConfig {
        archive: Some(archive.clone()),
        ..f.config.clone()
    };
    let err = match Homes::open(&config, f.app.pool.clone()).await {
        Ok(_) => panic!("an archive on another filesystem was accepted"),
        Err(e) => e,
    };
    assert!(matches!(err, HomesError::NotSameFilesystem { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(archive.to_str().unwrap()) && msg.contains(f.root.to_str().unwrap()),
        "{msg}"
    );

    // A bind mount of the same filesystem: same st_dev, and rename still fails with EXDEV.
    // The probe rename catches it.
    let real = f.base.join("real-archive");
    let bound = f.base.join("bound-archive");
    std::fs::create_dir_all(&real).unwrap();
    std::fs::create_dir_all(&bound).unwrap();
    let status = Command::new("mount")
        .args(["--bind", real.to_str().unwrap(), bound.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success(), "bind mount");
    f.mounts.push(bound.clone());
    assert_eq!(meta(&bound).dev(), meta(&f.root).dev());
    let config = HomesConfig {
        archive: Some(bound.clone()),
        ..f.config.clone()
    };
    let err = Homes::open(&config, f.app.pool.clone())
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, HomesError::NotSameFilesystem { .. }), "{err}");
    // And the root is left clean.
    assert!(f.temps().is_empty(), "{:?}", f.temps());
}

#[tokio::test]
async fn homes_two_operations_on_one_home_one_runs_the_other_is_busy() {
    let f = fixture().await;
    f.create("ana").await;
    f.create("bob").await;
    let (reached, resume) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    f.homes.set_failpoint(Some(Failpoint {
        step: "prepared".into(),
        when: FailWhen::AfterRecord,
        action: FailAction::Pause {
            reached: reached.clone(),
            resume: resume.clone(),
        },
    }));
    let first = {
        let homes = f.homes.clone();
        tokio::spawn(async move {
            homes
                .reset(&u("ana"), ResetScope::All, "first", &connie())
                .await
        })
    };
    tokio::time::timeout(PATIENCE, reached.notified())
        .await
        .unwrap();

    // The same instance, and another instance on the same database.
    let other = f.other_instance().await;
    for homes in [&f.homes, &other] {
        let err = homes
            .reset(&u("ana"), ResetScope::All, "second", &connie())
            .await
            .unwrap_err();
        assert!(matches!(err, HomesError::Busy(_)), "{err}");
        assert!(err.to_string().contains("already in progress"), "{err}");
        assert_eq!(err.status_code(), 409);
        let err = homes
            .restore(
                &u("ana"),
                &ArchiveId::parse("20200101T000000Z-x").unwrap(),
                &connie(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, HomesError::Busy(_)), "{err}");
        let err = homes.create(&u("ana"), &connie()).await.unwrap_err();
        assert!(matches!(err, HomesError::Busy(_)), "{err}");
    }
    // Another home is not held up.
    other
        .reset(&u("bob"), ResetScope::All, "meanwhile", &connie())
        .await
        .unwrap();

    resume.notify_one();
    let out = tokio::time::timeout(PATIENCE, first)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(out.archive.is_some());
    assert_eq!(f.archive_entries("ana").len(), 1, "exactly one reset ran");
    // Free again.
    f.reset_all("ana", "later").await;

    // Racing without a pause: every attempt either ran or was told Busy, and each one that
    // ran made exactly one archive entry.
    let runs = (0..4).map(|i| {
        let homes = if i % 2 == 0 {
            f.homes.clone()
        } else {
            other.clone()
        };
        async move {
            homes
                .reset(&u("bob"), ResetScope::All, "race", &connie())
                .await
        }
    });
    let results = futures_util::future::join_all(runs).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert!(ok >= 1);
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(HomesError::Busy(_)))),
        "{results:?}"
    );
    assert_eq!(f.archive_entries("bob").len(), 1 + ok);
    assert_eq!(f.running_ops().await, 0);
}

fn crash_at(step: &str, when: FailWhen) -> Failpoint {
    Failpoint {
        step: step.into(),
        when,
        action: FailAction::Crash,
    }
}

/// After a crash and recovery the home is exactly one of: untouched (the work in place, same
/// inode, no archive entry) or reset (a fresh template, the work in one archive entry with its
/// inode, recorded in home_archives). Returns which.
async fn home_is_consistent(f: &Fixture, name: &str, work: (u64, u64)) -> &'static str {
    assert_eq!(f.running_ops().await, 0, "every op settled");
    assert!(f.temps().is_empty(), "temporaries left: {:?}", f.temps());
    let entries = f.archive_entries(name);
    let home = f.home(name);
    if home.join("work.txt").exists() {
        assert_eq!(ino(&home.join("work.txt")), work);
        assert!(entries.is_empty(), "{entries:?}");
        "untouched"
    } else {
        assert_fresh_template(&home);
        assert_eq!(entries.len(), 1, "{entries:?}");
        let entry = f.root.join(".archive").join(name).join(&entries[0]);
        assert_eq!(ino(&entry.join("work.txt")), work, "the archive is intact");
        let rows: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM home_archives WHERE username = $1 AND id = $2 AND gone_at IS NULL",
        )
        .bind(name)
        .bind(&entries[0])
        .fetch_one(&f.app.pool)
        .await
        .unwrap();
        assert_eq!(rows, 1, "the archive's metadata is recorded");
        "reset"
    }
}

#[tokio::test]
async fn homes_a_crash_at_any_step_of_a_reset_is_recovered_from_the_journal() {
    let f = fixture().await;
    let cases = [
        ("begun", FailWhen::AfterRecord, "untouched"),
        ("prepared", FailWhen::BeforeRecord, "untouched"),
        ("prepared", FailWhen::AfterRecord, "untouched"),
        ("archived", FailWhen::BeforeRecord, "reset"),
        ("archived", FailWhen::AfterRecord, "reset"),
        ("installed", FailWhen::BeforeRecord, "reset"),
        ("installed", FailWhen::AfterRecord, "reset"),
    ];
    for (i, (step, when, expected)) in cases.into_iter().enumerate() {
        let name = format!("crash-{i}");
        f.create(&name).await;
        write(&f.home(&name).join("work.txt"), "precious");
        let work = ino(&f.home(&name).join("work.txt"));
        f.homes.set_failpoint(Some(crash_at(step, when)));
        let err = f
            .homes
            .reset(&u(&name), ResetScope::All, "crash", &connie())
            .await
            .unwrap_err();
        assert!(matches!(err, HomesError::Crashed(_)), "{step}: {err}");
        assert_eq!(
            f.running_ops().await,
            1,
            "{step}: the journal shows the unfinished op"
        );

        // Half the cases recover at start, the other half when the next op on the home
        // arrives (it settles the home first).
        if i % 2 == 0 {
            let report = f.homes.recover().await.unwrap();
            assert_eq!(
                report.finished + report.rolled_back,
                1,
                "{step}: {report:?}"
            );
        } else {
            let other = f.other_instance().await;
            other.exists(&u(&name)).await.unwrap();
            assert_eq!(f.running_ops().await, 1, "reading does not settle");
            assert!(!other.create(&u(&name), &connie()).await.unwrap(), "{step}");
        }
        let state = home_is_consistent(&f, &name, work).await;
        assert_eq!(state, expected, "crash at {step} {when:?}");
        let recovered: bool = sqlx::query_scalar(
            "SELECT recovered FROM home_ops WHERE username = $1 AND kind = 'reset'",
        )
        .bind(&name)
        .fetch_one(&f.app.pool)
        .await
        .unwrap();
        assert!(recovered);
        // The home works afterwards.
        f.reset_all(&name, "after").await;
    }
    // Finished ones are in the audit log, by the system, naming the original actor.
    let finished: i64 = f
        .app
        .count("SELECT count(*) FROM audit_log WHERE action = 'home.reset' AND actor = 'system' AND detail LIKE '%of connie%'")
        .await;
    assert_eq!(finished, 4);
}

#[tokio::test]
async fn homes_a_crash_at_any_step_of_a_restore_is_recovered_from_the_journal() {
    let f = fixture().await;
    let cases = [
        ("begun", FailWhen::AfterRecord, false),
        ("archived-current", FailWhen::BeforeRecord, true),
        ("archived-current", FailWhen::AfterRecord, true),
        ("restored", FailWhen::BeforeRecord, true),
        ("restored", FailWhen::AfterRecord, true),
    ];
    for (i, (step, when, restored)) in cases.into_iter().enumerate() {
        let name = format!("restore-{i}");
        f.create(&name).await;
        write(&f.home(&name).join("old.txt"), "old");
        let old = ino(&f.home(&name).join("old.txt"));
        let id = f.reset_all(&name, "reset").await;
        write(&f.home(&name).join("new.txt"), "new");
        let new = ino(&f.home(&name).join("new.txt"));
        f.homes.set_failpoint(Some(crash_at(step, when)));
        let err = f
            .homes
            .restore(&u(&name), &id, &connie())
            .await
            .unwrap_err();
        assert!(matches!(err, HomesError::Crashed(_)), "{err}");
        let report = f.homes.recover().await.unwrap();
        assert_eq!(report.finished + report.rolled_back, 1, "{report:?}");
        assert_eq!(f.running_ops().await, 0);
        let home = f.home(&name);
        let entries = f.archive_entries(&name);
        if restored {
            assert_eq!(ino(&home.join("old.txt")), old, "{step}");
            assert_eq!(entries.len(), 1, "{entries:?}");
            let replaced = f.root.join(".archive").join(&name).join(&entries[0]);
            assert_eq!(
                ino(&replaced.join("new.txt")),
                new,
                "{step}: replaced home archived"
            );
        } else {
            assert_eq!(ino(&home.join("new.txt")), new, "{step}");
            assert_eq!(entries, [id.to_string()]);
        }
        let listed = f.homes.archives(&u(&name)).await.unwrap();
        assert_eq!(listed.len(), 1, "{step}: {listed:?}");
    }
}

#[tokio::test]
async fn homes_crashes_in_create_environment_reset_and_purge_are_recovered() {
    let f = fixture().await;
    // create: a copy not known to be complete is removed (no home, no temp); a prepared
    // copy is renamed into place.
    for (i, (step, when, exists)) in [
        ("begun", FailWhen::AfterRecord, false),
        ("prepared", FailWhen::BeforeRecord, false),
        ("prepared", FailWhen::AfterRecord, true),
        ("installed", FailWhen::BeforeRecord, true),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("new-{i}");
        f.homes.set_failpoint(Some(crash_at(step, when)));
        assert!(f.homes.create(&u(&name), &connie()).await.is_err());
        f.homes.recover().await.unwrap();
        assert_eq!(f.home(&name).exists(), exists, "{step}");
        assert!(f.temps().is_empty());
        // Either way, create then works.
        f.homes.create(&u(&name), &connie()).await.unwrap();
        assert_fresh_template(&f.home(&name));
    }

    // environment reset: a crash after the first item moved → recovery moves the rest.
    f.create("envy").await;
    for item in [".local/a", ".cache/b", ".jupyter/c"] {
        write(&f.home("envy").join(item), "x");
    }
    write(&f.home("envy").join("work.txt"), "keep");
    f.homes
        .set_failpoint(Some(crash_at("moved .local", FailWhen::AfterRecord)));
    assert!(f
        .homes
        .reset(&u("envy"), ResetScope::Environment, "env", &connie())
        .await
        .is_err());
    assert!(!f.home("envy").join(".local").exists());
    assert!(f.home("envy").join(".cache").exists(), "not yet moved");
    let report = f.homes.recover().await.unwrap();
    assert_eq!(report.finished, 1);
    let entries = f.archive_entries("envy");
    let entry = f.root.join(".archive/envy").join(&entries[0]);
    for item in [".local/a", ".cache/b", ".jupyter/c"] {
        assert!(entry.join(item).exists(), "{item}");
        assert!(!f.home("envy").join(item).exists(), "{item}");
    }
    assert!(f.home("envy").join("work.txt").exists());

    // purge: a crash after the entries went to the trash → recovery deletes them.
    f.create("old").await;
    let id = f.reset_all("old", "old").await;
    sqlx::query("UPDATE home_archives SET created_at = now() - interval '30 days' WHERE id = $1")
        .bind(id.as_str())
        .execute(&f.app.pool)
        .await
        .unwrap();
    f.homes
        .set_failpoint(Some(crash_at("moved", FailWhen::AfterRecord)));
    let cutoff = time::OffsetDateTime::now_utc() - time::Duration::days(7);
    assert!(f
        .homes
        .purge_archives_older_than(cutoff, &Actor::Cli)
        .await
        .is_err());
    assert!(!f.archive("old", &id).exists(), "moved to the trash");
    let trash = f.root.join(".archive/.trash");
    assert_eq!(std::fs::read_dir(&trash).unwrap().count(), 1);
    f.homes.recover().await.unwrap();
    assert_eq!(
        std::fs::read_dir(&trash).unwrap().count(),
        0,
        "trash emptied"
    );
    assert!(f.homes.archives(&u("old")).await.unwrap().is_empty());
    assert_eq!(f.running_ops().await, 0);
}

/// Not a test on its own: `homes_reset_survives_kill_9` runs it in a child process, which
/// starts a reset that hangs right after moving the home into the archive (before the
/// journal knows), and is then killed with SIGKILL.
#[tokio::test]
#[ignore = "helper process for homes_reset_survives_kill_9"]
async fn homes_child_process_resets_and_hangs() {
    let Ok(url) = std::env::var("HOMES_CHILD_DATABASE_URL") else {
        eprintln!("homes_child_process_resets_and_hangs: only runs as homes_reset_survives_kill_9's child");
        return;
    };
    let root = PathBuf::from(std::env::var("HOMES_CHILD_ROOT").unwrap());
    let template = PathBuf::from(std::env::var("HOMES_CHILD_TEMPLATE").unwrap());
    let marker = PathBuf::from(std::env::var("HOMES_CHILD_MARKER").unwrap());
    let pool = db::pool_for(&url).await.unwrap();
    let mut config = HomesConfig {
        root: Some(root),
        template: Some(template),
        ..HomesConfig::default()
    };
    config.resolve(Path::new("/nonexistent")).unwrap();
    let homes = Homes::open(&config, pool).await.unwrap();
    homes.set_failpoint(Some(Failpoint {
        step: "archived".into(),
        when: FailWhen::BeforeRecord,
        action: FailAction::Hang(marker),
    }));
    let _ = homes
        .reset(&u("ana"), ResetScope::All, "killed", &connie())
        .await;
    unreachable!("the failpoint hangs until the parent kills this process");
}

#[tokio::test]
async fn homes_reset_survives_kill_9() {
    let f = fixture().await;
    f.create("ana").await;
    write(&f.home("ana").join("work.txt"), "precious");
    let work = ino(&f.home("ana").join("work.txt"));
    let marker = f.base.join("child-reached-archived");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "homes::homes_child_process_resets_and_hangs",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("HOMES_CHILD_DATABASE_URL", f.app.database_url())
        .env("HOMES_CHILD_ROOT", &f.root)
        .env("HOMES_CHILD_TEMPLATE", f.base.join("template"))
        .env("HOMES_CHILD_MARKER", &marker)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !marker.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child exited before the failpoint: {status}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the child never reached the failpoint"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The home is in the archive and the journal does not know yet.
    assert!(!f.home("ana").join("work.txt").exists());
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert_eq!(f.running_ops().await, 1);

    // The dead session's lock goes when PostgreSQL notices; until then recover reports busy.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut finished = 0;
    loop {
        let report = f.homes.recover().await.unwrap();
        finished += report.finished;
        if report.busy == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lock of the killed process stayed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(finished, 1);
    assert_eq!(home_is_consistent(&f, "ana", work).await, "reset");
}

#[tokio::test]
async fn homes_purge_deletes_only_archives_older_than_the_date() {
    let f = fixture().await;
    f.create("ana").await;
    write(&f.home("ana").join("w1.txt"), "week 1");
    let old = f.reset_all("ana", "old").await;
    write(&f.home("ana").join("w2.txt"), "week 2");
    let recent = f.reset_all("ana", "recent").await;
    write(&f.home("ana").join("now.txt"), "now");
    sqlx::query("UPDATE home_archives SET created_at = now() - interval '30 days' WHERE id = $1")
        .bind(old.as_str())
        .execute(&f.app.pool)
        .await
        .unwrap();
    // bob has an entry nobody recorded (made by hand): its name dates it.
    f.create("bob").await;
    let by_hand = f.root.join(".archive/bob/20200101T000000Z-by-hand");
    write(&by_hand.join("x.txt"), "old");
    let bob_home = snapshot(&f.home("bob"));

    let cutoff = time::OffsetDateTime::now_utc() - time::Duration::days(7);
    let report = f
        .homes
        .purge_archives_older_than(cutoff, &Actor::Cli)
        .await
        .unwrap();
    let mut removed: Vec<(String, String)> = report
        .removed
        .iter()
        .map(|r| (r.username.clone(), r.id.to_string()))
        .collect();
    removed.sort();
    assert_eq!(
        removed,
        [
            ("ana".to_string(), old.to_string()),
            ("bob".to_string(), "20200101T000000Z-by-hand".to_string())
        ]
    );
    assert!(report.bytes > 0 && report.busy.is_empty());
    assert!(!f.archive("ana", &old).exists());
    assert!(!by_hand.exists());
    assert!(
        f.archive("ana", &recent).join("w2.txt").exists(),
        "a recent archive stays"
    );
    assert!(
        f.home("ana").join("now.txt").exists(),
        "homes are never purged"
    );
    assert_eq!(snapshot(&f.home("bob")), bob_home);
    let left = f.homes.archives(&u("ana")).await.unwrap();
    assert_eq!(left.iter().map(|a| &a.id).collect::<Vec<_>>(), [&recent]);
    let gone: Option<String> =
        sqlx::query_scalar("SELECT gone_reason FROM home_archives WHERE id = $1")
            .bind(old.as_str())
            .fetch_one(&f.app.pool)
            .await
            .unwrap();
    assert_eq!(gone.as_deref(), Some("purged"));
    assert_eq!(f.audits("home.purge", "ana").await, 1);
    assert_eq!(f.audits("home.purge", "bob").await, 1);
    assert_eq!(
        std::fs::read_dir(f.root.join(".archive/.trash"))
            .unwrap()
            .count(),
        0
    );

    // A cutoff within the last day is refused by the service itself (not only the page): a
    // recent reset may still need undoing.
    let err = f
        .homes
        .purge_archives_older_than(time::OffsetDateTime::now_utc(), &Actor::Cli)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("older than yesterday"), "{err}");

    // Nothing older: nothing removed, nothing audited.
    let again = f
        .homes
        .purge_archives_older_than(cutoff, &Actor::Cli)
        .await
        .unwrap();
    assert!(again.removed.is_empty());
    assert_eq!(f.audits("home.purge", "ana").await, 1);
}

#[tokio::test]
async fn homes_usage_counts_allocated_bytes_once_per_inode() {
    let f = fixture().await;
    f.create("ana").await;
    let empty = f.homes.usage(&u("ana")).await.unwrap();
    let data = vec![1u8; 1 << 20];
    std::fs::write(f.home("ana").join("a.bin"), &data).unwrap();
    std::fs::hard_link(f.home("ana").join("a.bin"), f.home("ana").join("b.bin")).unwrap();
    // A sparse file: 1 GiB apparent, almost nothing allocated.
    let sparse = std::fs::File::create(f.home("ana").join("sparse")).unwrap();
    sparse.set_len(1 << 30).unwrap();
    let used = f.homes.usage(&u("ana")).await.unwrap();
    let grown = used - empty;
    assert!(
        (1 << 20..(1 << 20) + (64 << 10)).contains(&grown),
        "{grown}"
    );
    let err = f.homes.usage(&u("nobody-here")).await.unwrap_err();
    assert!(matches!(err, HomesError::NotFound(_)));
}

/// Counts the hub's "stop the server" calls.
#[derive(Default)]
struct StopServer(AtomicUsize);

impl BeforeHomeChange for StopServer {
    fn before<'a>(&'a self, _: &'a Username) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

fn runner(pool: &PgPool, homes: &Homes, hook: Arc<StopServer>) -> Runner {
    Runner::new(
        pool.clone(),
        homes_jobs::handlers(homes.clone(), Some(hook)),
    )
    .with_options(RunnerOptions {
        poll_interval: Duration::from_millis(20),
        lease: Duration::from_secs(30),
        heartbeat: None,
        concurrency: 1,
        backoff: Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_millis(50),
        },
        shutdown_grace: Duration::from_secs(5),
    })
}

async fn run_to_end(r: &Runner, pool: &PgPool, id: uuid::Uuid) -> hubdesk::jobs::JobRow {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        r.tick().await.unwrap();
        let mut conn = pool.acquire().await.unwrap();
        let row = db::jobs::get(&mut conn, id).await.unwrap().unwrap();
        if row.state.is_final() {
            return row;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job never finished: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn homes_jobs_create_reset_and_restore_and_resume_without_repeating() {
    let f = fixture().await;
    let pool = f.app.pool.clone();
    let hook = Arc::new(StopServer::default());
    let r = runner(&pool, &f.homes, hook.clone());
    let mut conn = pool.acquire().await.unwrap();

    let many = CreateManyJob {
        usernames: vec!["ana".into(), "bob".into(), "cid".into()],
    };
    let id = many.enqueue(&mut conn, &connie()).await.unwrap();
    assert_eq!(
        db::homes::active_job(&mut conn, "bob").await.unwrap(),
        Some(id)
    );
    let row = run_to_end(&r, &pool, id).await;
    assert_eq!(row.state, JobState::Succeeded, "{row:?}");
    assert_eq!(
        row.result.as_ref().unwrap()["created"],
        serde_json::json!(["ana", "bob", "cid"])
    );
    assert_fresh_template(&f.home("cid"));
    let again = many.enqueue(&mut conn, &connie()).await.unwrap();
    let row = run_to_end(&r, &pool, again).await;
    assert_eq!(
        row.result.as_ref().unwrap()["existing"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(db::homes::active_job(&mut conn, "bob").await.unwrap(), None);

    // A reset job.
    write(&f.home("ana").join("work.txt"), "mine");
    let job = ResetJob {
        username: "ana".into(),
        scope: ResetScope::All,
        reason: Some("job".into()),
    };
    let id = job.enqueue(&mut conn, &connie()).await.unwrap();
    assert_eq!(
        db::homes::active_job(&mut conn, "ana").await.unwrap(),
        Some(id)
    );
    let row = run_to_end(&r, &pool, id).await;
    assert_eq!(row.state, JobState::Succeeded, "{row:?}");
    let archive = row.result.as_ref().unwrap()["archive"]
        .as_str()
        .unwrap()
        .to_string();
    let steps: Vec<&str> = row.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(steps, ["server stopped", "reset"]);
    assert_eq!(hook.0.load(Ordering::SeqCst), 1);
    assert!(f
        .root
        .join(".archive/ana")
        .join(&archive)
        .join("work.txt")
        .exists());

    // The process dies after the reset is done on disk and in the journal's steps but before
    // the op (and the job) finished: the retry settles the op and returns its result; it does
    // not reset a second time.
    f.homes
        .set_failpoint(Some(crash_at("installed", FailWhen::AfterRecord)));
    let id = job.enqueue(&mut conn, &connie()).await.unwrap();
    let row = run_to_end(&r, &pool, id).await;
    assert_eq!(row.state, JobState::Succeeded, "{row:?}");
    assert_eq!(row.attempts, 2);
    assert_eq!(
        f.archive_entries("ana").len(),
        2,
        "one archive per reset job"
    );
    let second = row.result.as_ref().unwrap()["archive"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(second, archive);

    // Restore the first archive as a job.
    let restore = RestoreJob {
        username: "ana".into(),
        archive: archive.clone(),
    };
    let id = restore.enqueue(&mut conn, &connie()).await.unwrap();
    let row = run_to_end(&r, &pool, id).await;
    assert_eq!(row.state, JobState::Succeeded, "{row:?}");
    assert_eq!(row.result.as_ref().unwrap()["restored"], archive.as_str());
    assert!(f.home("ana").join("work.txt").exists());

    // A payload that can never work fails at once.
    let bad = RestoreJob {
        username: "ana".into(),
        archive: "../../etc".into(),
    };
    let id = bad.enqueue(&mut conn, &connie()).await.unwrap();
    let row = run_to_end(&r, &pool, id).await;
    assert_eq!((row.state, row.attempts), (JobState::Failed, 1), "{row:?}");
}
