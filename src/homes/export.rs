//! Homes as a zip, streamed: a home, or a cohort's homes as `<username>/…`. Written on the
//! blocking pool into a bounded channel of 64 KiB chunks, so memory does not grow with the
//! size of the home and a client that goes away stops the walk. Symlinks are stored as links
//! (never followed); sockets, pipes and devices are skipped; nothing outside a home is read.
//!
//! Names in the zip are made safe for every extractor ([`entry_name`]): a student can name a
//! file `..\..\startup.bat` or `C:evil`, which a naive Windows extractor would treat as a path
//! out of the folder it extracts to (zip-slip). `\` becomes `%5C` and `:` becomes `%3A`;
//! bytes that are not UTF-8 become U+FFFD; a name that would then repeat another in the same
//! folder gets `~2`, `~3`… (a zip with two equal names is refused by many tools, and would let
//! one student's crafted names stop a whole cohort's export).
use std::{
    collections::HashSet,
    ffi::CStr,
    io::{self, Write},
    os::fd::{AsFd, BorrowedFd},
};

use actix_web::web::Bytes;
use futures_util::Stream;
use rustix::fs::{self as rfs, FileType, Mode, OFlags};
use tokio::sync::mpsc;
use zip::{
    write::{SimpleFileOptions, StreamWriter},
    CompressionMethod, ZipWriter,
};

use super::{
    fs::{dev_ino, io_err, lstat, open_dir, read_names, MAX_DEPTH},
    Homes, HomesError, Tree,
};
use crate::domain::Username;

const CHUNK: usize = 64 * 1024;
/// Chunks in flight between the walk and the HTTP response: 8 × 64 KiB.
const IN_FLIGHT: usize = 8;

/// Collects bytes into chunks and hands them to the response; a closed response is an error
/// that ends the walk.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
    written: u64,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the download was cancelled"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        self.written += data.len() as u64;
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

type Zip = ZipWriter<StreamWriter<ChannelWriter>>;

impl Homes {
    /// A zip of the homes of `students` (missing homes are skipped), as a byte stream for an
    /// HTTP body. With `prefix`, each home is under `<username>/`; otherwise at the top.
    pub fn export_zip(
        &self,
        students: Vec<Username>,
        prefix: bool,
    ) -> impl Stream<Item = io::Result<Bytes>> + 'static {
        let (tx, rx) = mpsc::channel(IN_FLIGHT);
        let tree = self.tree.clone();
        tokio::task::spawn_blocking(move || {
            let error_tx = tx.clone();
            let writer = ChannelWriter {
                tx,
                buf: Vec::with_capacity(CHUNK),
                written: 0,
            };
            if let Err(e) = write_zip(&tree, writer, &students, prefix) {
                tracing::warn!(error = %e, "zip export stopped");
                let _ = error_tx.blocking_send(Err(io::Error::other(e.to_string())));
            }
        });
        futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
    }
}

fn write_zip(
    tree: &Tree,
    writer: ChannelWriter,
    students: &[Username],
    prefix: bool,
) -> Result<(), HomesError> {
    let mut zip = ZipWriter::new_stream(writer);
    for u in students {
        let home = match open_dir(tree.root.as_fd(), u.as_str()) {
            Ok(fd) => fd,
            // No home yet, or a symlink/file where the home should be: nothing of theirs.
            Err(_) => continue,
        };
        let top = if prefix {
            let name = format!("{u}/");
            zip.add_directory(&name, options(0o755)).map_err(zip_err)?;
            name
        } else {
            String::new()
        };
        add_dir(&mut zip, home.as_fd(), &top, 0, &format!("home of {u}"))?;
    }
    let mut writer = zip.finish().map_err(zip_err)?.into_inner();
    writer.flush().map_err(|e| HomesError::Io {
        what: "sending the zip".into(),
        source: e,
    })?;
    Ok(())
}

fn options(mode: u32) -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .unix_permissions(mode & 0o777)
        .large_file(true)
}

fn zip_err(e: zip::result::ZipError) -> HomesError {
    HomesError::Io {
        what: "writing the zip".into(),
        source: io::Error::other(e.to_string()),
    }
}

fn add_dir(
    zip: &mut Zip,
    dir: BorrowedFd<'_>,
    rel: &str,
    depth: usize,
    label: &str,
) -> Result<(), HomesError> {
    if depth > MAX_DEPTH {
        return Err(HomesError::UnsafePath(format!(
            "{label}: deeper than {MAX_DEPTH} levels"
        )));
    }
    let mut names = read_names(dir).map_err(io_err(format!("reading {label}")))?;
    names.sort();
    let dev = dev_ino(&rfs::fstat(dir).map_err(io_err(label.to_string()))?).0;
    let mut taken = HashSet::new();
    for name in names {
        let Some(st) = lstat(dir, name.as_c_str()).map_err(io_err(label.to_string()))? else {
            continue; // gone since the listing
        };
        let path = format!("{rel}{}", entry_name(name.to_bytes(), &mut taken));
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                if dev_ino(&st).0 != dev {
                    continue; // another filesystem mounted inside: not the student's
                }
                let Ok(child) = open_dir(dir, name.as_c_str()) else {
                    continue;
                };
                let child_st = rfs::fstat(&child).map_err(io_err(label.to_string()))?;
                if dev_ino(&child_st) != dev_ino(&st) {
                    continue; // swapped between the look and the open
                }
                zip.add_directory(format!("{path}/"), options(st.st_mode))
                    .map_err(zip_err)?;
                add_dir(zip, child.as_fd(), &format!("{path}/"), depth + 1, label)?;
            }
            FileType::RegularFile => {
                add_file(zip, dir, &name, &st, &path, label)?;
            }
            FileType::Symlink => {
                let target = rfs::readlinkat(dir, name.as_c_str(), Vec::new())
                    .map_err(io_err(format!("{label}: {path}")))?;
                zip.add_symlink(path, target.to_string_lossy(), options(0o777))
                    .map_err(zip_err)?;
            }
            _ => {} // sockets, pipes, devices: not work anyone hands in
        }
    }
    Ok(())
}

/// One file name as it goes into the zip (see the module's documentation): no `\` or `:`,
/// valid UTF-8, and not a name already `taken` in its folder.
fn entry_name(raw: &[u8], taken: &mut HashSet<String>) -> String {
    let mut name = String::with_capacity(raw.len());
    for c in String::from_utf8_lossy(raw).chars() {
        match c {
            '\\' => name.push_str("%5C"),
            ':' => name.push_str("%3A"),
            c => name.push(c),
        }
    }
    let mut unique = name.clone();
    let mut n = 1;
    while !taken.insert(unique.clone()) {
        n += 1;
        unique = format!("{name}~{n}");
    }
    unique
}

fn add_file(
    zip: &mut Zip,
    dir: BorrowedFd<'_>,
    name: &CStr,
    st: &rfs::Stat,
    path: &str,
    label: &str,
) -> Result<(), HomesError> {
    let fd = match rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::LOOP) => return Ok(()),
        Err(e) => return Err(io_err(format!("{label}: {path}"))(e)),
    };
    let now = rfs::fstat(&fd).map_err(io_err(label.to_string()))?;
    if dev_ino(&now) != dev_ino(st) || FileType::from_raw_mode(now.st_mode) != FileType::RegularFile
    {
        return Ok(()); // swapped between the look and the open
    }
    zip.start_file(path, options(st.st_mode)).map_err(zip_err)?;
    let mut file = std::fs::File::from(fd);
    io::copy(&mut file, zip).map_err(|e| HomesError::Io {
        what: format!("{label}: {path}"),
        source: e,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homes_zip_names_cannot_climb_out_on_windows_and_never_repeat() {
        let mut taken = HashSet::new();
        assert_eq!(entry_name(b"notes.ipynb", &mut taken), "notes.ipynb");
        assert_eq!(
            entry_name(b"..\\..\\startup.bat", &mut taken),
            "..%5C..%5Cstartup.bat"
        );
        assert_eq!(entry_name(b"C:evil", &mut taken), "C%3Aevil");
        assert_eq!(entry_name(b"a%5Cb", &mut taken), "a%5Cb");
        assert_eq!(entry_name(b"a\\b", &mut taken), "a%5Cb~2", "a crafted twin");
        assert_eq!(entry_name(b"x\xff", &mut taken), "x\u{fffd}");
        assert_eq!(entry_name(b"x\xfe", &mut taken), "x\u{fffd}~2");
        assert_eq!(entry_name(b"x\xfd", &mut taken), "x\u{fffd}~3");
        let mut other_folder = HashSet::new();
        assert_eq!(entry_name(b"notes.ipynb", &mut other_folder), "notes.ipynb");
    }
}
