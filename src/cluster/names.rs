//! How SwarmSpawner names notebook services, and how hubdesk reads a student back from them.
//!
//! dockerspawner names a service `jupyter-{escaped username}` (and `…--{escaped server}` for a
//! named server), escaped with `escapism`: safe characters are `[a-z0-9]`, everything else is
//! `-` followed by the byte's two lowercase hex digits (`bob-smith` → `bob-2dsmith`).

/// The name prefix of a notebook service.
pub const SERVICE_PREFIX: &str = "jupyter-";

/// The service label the shipped hub config's `pre_spawn_hook` sets to the username.
pub const USER_LABEL: &str = "hubdesk.user";

/// The student a `jupyter-*` service belongs to, by un-escaping its name; `None` when the name
/// is not a notebook service or does not un-escape to text.
pub fn student_of_service(service: &str) -> Option<String> {
    let escaped = service.strip_prefix(SERVICE_PREFIX)?;
    // A named server: `{user}--{server}` (a literal '-' in either is escaped, so `--` splits).
    let user = escaped.split("--").next()?;
    if user.is_empty() {
        return None;
    }
    unescape(user)
}

/// Reverses `escapism.escape(s, escape_char='-')`.
pub fn unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'-' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `escapism.escape(s, safe=[a-z0-9], escape_char='-')`, as the spawner names services.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            out.push(b as char);
        } else {
            out.push_str(&format!("-{b:02x}"));
        }
    }
    out
}

/// The service SwarmSpawner makes for `username`'s default server.
pub fn service_of(username: &str) -> String {
    format!("{SERVICE_PREFIX}{}", escape(username))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_unescape_like_escapism() {
        assert_eq!(
            student_of_service("jupyter-bob-2dsmith").as_deref(),
            Some("bob-smith")
        );
        assert_eq!(student_of_service("jupyter-ana").as_deref(), Some("ana"));
        assert_eq!(
            student_of_service("jupyter-ana--gpu").as_deref(),
            Some("ana")
        );
        assert_eq!(
            student_of_service("jupyter-j-c3-a9r-c3-b4me").as_deref(),
            Some("jérôme")
        );
        assert_eq!(student_of_service("jupyter-bad-zz"), None);
        assert_eq!(student_of_service("jupyter-"), None);
        assert_eq!(student_of_service("hub"), None);
    }

    #[test]
    fn cluster_names_escape_round_trips() {
        for name in ["bob-smith", "ana", "a.b_c", "jérôme"] {
            assert_eq!(student_of_service(&service_of(name)).as_deref(), Some(name));
        }
        assert_eq!(service_of("bob-smith"), "jupyter-bob-2dsmith");
    }
}
