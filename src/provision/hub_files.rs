//! The deploy kit's files the hub node runs, embedded in the binary: `hubdesk hub-files`
//! writes them, and `deploy/hub-node.sh` runs it right after installing hubdesk (a release
//! checked by its SHA-256, or a build of the same source). So the node gets exactly the
//! files of the hubdesk it runs, and EC2's 16 KB of user-data carry only the camp's values
//! (the hub config and its spawner no longer fit there, even compressed).
use std::{
    io::Write,
    path::{Path, PathBuf},
};

/// One file: where it goes (relative to the root, normally `/`), its mode and its text.
#[derive(Debug, Clone, Copy)]
pub struct HubFile {
    pub path: &'static str,
    pub mode: u32,
    pub text: &'static str,
}

pub const HUB_FILES: &[HubFile] = &[
    HubFile {
        path: "etc/jupyterhub/jupyterhub_config.py",
        mode: 0o644,
        text: include_str!("../../deploy/jupyterhub_config.py"),
    },
    HubFile {
        path: "etc/jupyterhub/hubdesk_spawner.py",
        mode: 0o644,
        text: include_str!("../../deploy/hub/hubdesk_spawner.py"),
    },
    HubFile {
        path: "etc/systemd/system/hubdesk.service",
        mode: 0o644,
        text: include_str!("../../deploy/hubdesk.service"),
    },
];

/// Writes every file under `root` (each through a temporary file renamed into place, so a
/// running hub never reads half a config); returns the paths written.
pub fn write(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::with_capacity(HUB_FILES.len());
    for f in HUB_FILES {
        let path = root.join(f.path);
        let dir = path.parent().expect("every hub file is in a directory");
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile_in(dir, &path)?;
        tmp.1.write_all(f.text.as_bytes())?;
        tmp.1.sync_all()?;
        set_mode(&tmp.0, f.mode)?;
        std::fs::rename(&tmp.0, &path)?;
        written.push(path);
    }
    Ok(written)
}

fn tempfile_in(dir: &Path, target: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let file = std::fs::File::create(&tmp)?;
    Ok((tmp, file))
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provision_hub_files_land_under_the_root_with_their_text_and_mode() {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!("hubdesk-hub-files-{}", uuid::Uuid::new_v4()));
        let written = write(&root).unwrap();
        assert_eq!(written.len(), HUB_FILES.len());
        for f in HUB_FILES {
            let path = root.join(f.path);
            assert_eq!(std::fs::read_to_string(&path).unwrap(), f.text);
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, f.mode, "{}", f.path);
        }
        // Again (a re-run of the bootstrap, an upgrade): replaced in place, nothing left over.
        write(&root).unwrap();
        let left: Vec<_> = std::fs::read_dir(root.join("etc/jupyterhub"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        std::fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn provision_hub_config_finds_its_spawner_module_beside_it() {
        let config = HUB_FILES[0];
        let import = config
            .text
            .lines()
            .find(|l| l.trim_start().starts_with("from hubdesk_spawner import "))
            .expect("the config imports the spawner module");
        for name in ["HubdeskSwarmSpawner", "HubdeskAnnouncements"] {
            assert!(import.contains(name), "{import}");
            assert!(HUB_FILES[1].text.contains(&format!("class {name}")));
        }
        assert!(HUB_FILES[1].path.ends_with("/hubdesk_spawner.py"));
        assert_eq!(
            Path::new(config.path).parent(),
            Path::new(HUB_FILES[1].path).parent()
        );
    }
}
