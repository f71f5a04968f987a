//! Certificate dates for `hubdesk doctor`: each PEM file of `[tls] cert_files` (a `*` in the
//! file name matches within its directory), every certificate in it (leaf and chain), parsed
//! with `x509-parser`. Expired or not yet valid: FAIL; ending within `warn_days`: WARN; and the
//! line says when a certificate is self-signed (the camp's default without a domain name).
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use x509_parser::pem::Pem;

use super::{Check, Level};
use crate::config::TlsConfig;

const NAME: &str = "tls certificate";

const RENEW: &str = "renew it: rerun deploy/hub-node.sh (it makes a new self-signed \
                     certificate) or `certbot renew`, then `systemctl reload nginx`";

/// One line per certificate file found, and one for each pattern that finds none.
pub fn check(config: &TlsConfig, now: OffsetDateTime) -> Vec<Check> {
    let mut out = Vec::new();
    for pattern in &config.cert_files {
        match expand(pattern) {
            Err(why) => out.push(Check::bad(
                Level::Fail,
                NAME,
                why,
                "correct [tls] cert_files (or HUBDESK_TLS__CERT_FILES)",
            )),
            Ok(files) if files.is_empty() => out.push(Check::bad(
                Level::Warn,
                NAME,
                format!("no file matches {pattern}"),
                "set [tls] cert_files to the certificates nginx serves (deploy/hub-node.sh \
                 keeps them in /etc/hubdesk/tls/), or to [] where hubdesk has no TLS in front",
            )),
            Ok(files) => {
                for file in files {
                    if let Some(c) = check_file(&file, config.warn_days, now) {
                        out.push(c);
                    }
                }
            }
        }
    }
    out
}

/// The certificates of `[tls] cert_files` that can be read, for a client that must trust the
/// camp's own (self-signed) certificate when it asks the camp's public address. Unreadable or
/// unparsable files are left out here: [`check`] reports them.
pub fn own_certificates(config: &TlsConfig) -> Vec<reqwest::Certificate> {
    let mut out = Vec::new();
    for pattern in &config.cert_files {
        for file in expand(pattern).unwrap_or_default() {
            let Ok(data) = std::fs::read(&file) else {
                continue;
            };
            for pem in Pem::iter_from_buffer(&data).map_while(Result::ok) {
                if pem.label == "CERTIFICATE" {
                    if let Ok(cert) = reqwest::Certificate::from_der(&pem.contents) {
                        out.push(cert);
                    }
                }
            }
        }
    }
    out
}

/// The files a pattern names: itself (it must exist), or the matches of a `*` in its file name.
fn expand(pattern: &str) -> Result<Vec<PathBuf>, String> {
    let path = Path::new(pattern);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{pattern:?} names no file"))?;
    if !name.contains('*') {
        return if path.is_file() {
            Ok(vec![path.to_path_buf()])
        } else {
            Err(format!("{pattern}: no such file"))
        };
    }
    let (prefix, suffix) = name.split_once('*').unwrap_or((name, ""));
    if suffix.contains('*') {
        return Err(format!("{pattern:?}: one `*` at most"));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.len() >= prefix.len() + suffix.len() && n.starts_with(prefix) && n.ends_with(suffix)
        })
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// `None` for a file that holds a private key and no certificate (nginx's `*.key.pem`).
fn check_file(path: &Path, warn_days: u32, now: OffsetDateTime) -> Option<Check> {
    let shown = path.display();
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) => {
            return Some(Check::bad(
                Level::Fail,
                NAME,
                format!("{shown}: {e}"),
                "let the user running doctor read it (run doctor as root on the hub node)",
            ))
        }
    };
    let mut blocks = Vec::new();
    let mut key = false;
    for pem in Pem::iter_from_buffer(&data) {
        match pem {
            Ok(p) if p.label == "CERTIFICATE" => blocks.push(p),
            Ok(p) if p.label.ends_with("PRIVATE KEY") => key = true,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    if blocks.is_empty() {
        return (!key).then(|| {
            Check::bad(
                Level::Fail,
                NAME,
                format!("{shown}: no PEM certificate in it"),
                "point [tls] cert_files at the certificate (chain) files",
            )
        });
    }
    let mut worst: Option<Check> = None;
    for (i, block) in blocks.iter().enumerate() {
        let which = if i == 0 {
            String::new()
        } else {
            format!(" (chain #{i})")
        };
        let cert = match block.parse_x509() {
            Ok(c) => c,
            Err(e) => {
                return Some(Check::bad(
                    Level::Fail,
                    NAME,
                    format!("{shown}{which}: not an X.509 certificate ({e})"),
                    "replace it with the PEM certificate nginx serves",
                ))
            }
        };
        let validity = cert.validity();
        let not_before = validity.not_before.to_datetime();
        let not_after = validity.not_after.to_datetime();
        let subject = cert.subject().to_string();
        let self_signed = cert.subject().as_raw() == cert.issuer().as_raw();
        let signed = if self_signed {
            "self-signed".to_string()
        } else {
            format!("issued by {}", cert.issuer())
        };
        let date = |t: OffsetDateTime| t.date().to_string();
        let days = (not_after - now).whole_days();
        let line = if now > not_after {
            Check::bad(
                Level::Fail,
                NAME,
                format!(
                    "{shown}{which}: {subject} expired on {} ({} days ago), {signed}",
                    date(not_after),
                    -days
                ),
                RENEW,
            )
        } else if now < not_before {
            Check::bad(
                Level::Fail,
                NAME,
                format!(
                    "{shown}{which}: {subject} is not valid before {}, {signed}",
                    date(not_before)
                ),
                "check the clock of this machine (timedatectl), or make the certificate again",
            )
        } else if days < i64::from(warn_days) {
            Check::bad(
                Level::Warn,
                NAME,
                format!(
                    "{shown}{which}: {subject} ends on {} (in {days} days), {signed}",
                    date(not_after)
                ),
                RENEW,
            )
        } else {
            Check::ok(
                NAME,
                format!(
                    "{shown}{which}: {subject} valid until {} ({days} days), {signed}",
                    date(not_after)
                ),
            )
        };
        // The file's line is the leaf's, unless something in its chain is worse.
        let rank = |l: Level| match l {
            Level::Ok => 0,
            Level::Warn => 1,
            Level::Fail => 2,
        };
        if worst
            .as_ref()
            .is_none_or(|w| rank(line.level) > rank(w.level))
        {
            worst = Some(line);
        }
    }
    worst
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DistinguishedName, DnType, Issuer, KeyPair};
    use time::Duration;

    use super::*;

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2026-12-01 12:00 UTC)
    }

    fn params(cn: &str, from_days: i64, to_days: i64) -> CertificateParams {
        let mut p = CertificateParams::new(vec!["hub.camp.example".to_string()]).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        p.distinguished_name = dn;
        p.not_before = now() + Duration::days(from_days);
        p.not_after = now() + Duration::days(to_days);
        p
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("hubdesk-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn dates_decide_the_level_and_self_signed_is_said() {
        let d = dir();
        let key = KeyPair::generate().unwrap();
        let fine = params("fine", -30, 90).self_signed(&key).unwrap();
        let soon = params("soon", -80, 5).self_signed(&key).unwrap();
        let old = params("old", -400, -3).self_signed(&key).unwrap();
        let early = params("early", 2, 400).self_signed(&key).unwrap();
        write(&d, "a-fine.pem", &fine.pem());
        write(&d, "b-soon.pem", &soon.pem());
        write(&d, "c-old.pem", &old.pem());
        write(&d, "d-early.pem", &early.pem());
        write(&d, "e.key.pem", &key.serialize_pem());
        write(&d, "notes.txt", "not a pem");
        let config = TlsConfig {
            cert_files: vec![format!("{}/*.pem", d.display())],
            warn_days: 14,
        };
        let lines = check(&config, now());
        let text: Vec<String> = lines.iter().map(|c| c.to_string()).collect();
        assert_eq!(lines.len(), 4, "the key file is skipped: {text:#?}");
        let levels: Vec<Level> = lines.iter().map(|c| c.level).collect();
        assert_eq!(
            levels,
            [Level::Ok, Level::Warn, Level::Fail, Level::Fail],
            "{text:#?}"
        );
        assert!(text[0].contains("CN=fine valid until 2027-03-01 (90 days), self-signed"));
        assert!(
            text[1].contains("ends on 2026-12-06 (in 5 days)"),
            "{}",
            text[1]
        );
        assert!(
            text[2].contains("expired on 2026-11-28 (3 days ago)"),
            "{}",
            text[2]
        );
        assert!(text[2].contains("fix: renew it"));
        assert!(
            text[3].contains("not valid before 2026-12-03"),
            "{}",
            text[3]
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_chain_is_as_bad_as_its_worst_certificate_and_names_the_issuer() {
        let d = dir();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = params("Camp CA", -500, -1);
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = params("hub", -10, 200)
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let chain = write(&d, "chain.pem", &format!("{}{}", leaf.pem(), ca_cert.pem()));
        let config = TlsConfig {
            cert_files: vec![chain.display().to_string()],
            warn_days: 14,
        };
        let lines = check(&config, now());
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].level, Level::Fail, "{}", lines[0]);
        assert!(lines[0].found.contains("(chain #1)"), "{}", lines[0]);

        let only_leaf = write(&d, "leaf.pem", &leaf.pem());
        let config = TlsConfig {
            cert_files: vec![only_leaf.display().to_string()],
            warn_days: 14,
        };
        let line = &check(&config, now())[0];
        assert_eq!(line.level, Level::Ok);
        assert!(line.found.contains("issued by CN=Camp CA"), "{line}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn missing_files_and_empty_globs_say_what_to_set() {
        let d = dir();
        let config = TlsConfig {
            cert_files: vec![
                format!("{}/missing.pem", d.display()),
                format!("{}/*.pem", d.display()),
                format!("{}/no-such-dir/*.pem", d.display()),
            ],
            warn_days: 14,
        };
        let lines = check(&config, now());
        let levels: Vec<Level> = lines.iter().map(|c| c.level).collect();
        assert_eq!(levels, [Level::Fail, Level::Warn, Level::Warn]);
        assert!(lines[0].found.contains("no such file"));
        assert!(lines[1].to_string().contains("/etc/hubdesk/tls/"));
        write(
            &d,
            "junk.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let config = TlsConfig {
            cert_files: vec![format!("{}/junk.pem", d.display())],
            warn_days: 14,
        };
        let line = &check(&config, now())[0];
        assert_eq!(line.level, Level::Fail, "{line}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
