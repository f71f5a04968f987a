//! Readable generated credentials.
use std::collections::HashSet;

use rand::{seq::SliceRandom, Rng};

use crate::domain::{username::MAX_LEN, Username};

// No l/1, o/0, c/k or q: easy to read off a printed card and to type on a phone.
const CONSONANTS: &[u8] = b"bdfghjkmnprstvz";
const VOWELS: &[u8] = b"aeiu";

/// Three pronounceable 4-letter words and two digits, e.g. `baku-midi-seta-47`: about 41 bits,
/// ample behind login throttling, and a child can type it.
pub fn password() -> String {
    let mut rng = rand::rngs::OsRng;
    let mut word = || -> String {
        (0..2)
            .flat_map(|_| {
                [
                    *CONSONANTS.choose(&mut rng).unwrap_or(&b'b'),
                    *VOWELS.choose(&mut rng).unwrap_or(&b'a'),
                ]
            })
            .map(char::from)
            .collect()
    };
    let words = [word(), word(), word()];
    let digits: u8 = rand::rngs::OsRng.gen_range(22..=99);
    let digits = if digits % 10 < 2 { digits + 2 } else { digits };
    format!("{}-{}-{}-{}", words[0], words[1], words[2], digits)
}

/// Letters and digits that cannot be mistaken for one another when read aloud or off a screen.
const CODE_CHARS: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

/// A one-time reset code, `KQ7M-4TXP`: 8 of 31 characters, about 40 bits, valid 15 minutes and
/// checked behind the login throttle.
pub fn reset_code() -> String {
    let mut rng = rand::rngs::OsRng;
    let chars: String = (0..8)
        .map(|_| char::from(*CODE_CHARS.choose(&mut rng).unwrap_or(&b'A')))
        .collect();
    format!("{}-{}", &chars[..4], &chars[4..])
}

/// A code as typed ("kq7m 4txp", "KQ7M-4TXP") in the form it is hashed in: `KQ7M4TXP`.
pub fn normalise_code(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// `count` distinct passwords.
pub fn passwords(count: usize) -> Vec<String> {
    let mut seen = HashSet::with_capacity(count);
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let p = password();
        if seen.insert(p.clone()) {
            out.push(p);
        }
    }
    out
}

/// The username a display name suggests: first name plus the initial of the last name,
/// transliterated to ASCII ("José Núñez" → "josen"). Room is left for a numeric suffix.
pub fn username_base(display_name: &str) -> String {
    let ascii = deunicode::deunicode(display_name).to_ascii_lowercase();
    let words: Vec<String> = ascii
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    let mut base = match words.as_slice() {
        [] => "student".to_string(),
        [one] => one.clone(),
        [first, .., last] => format!("{first}{}", &last[..1]),
    };
    if !base.starts_with(|c: char| c.is_ascii_lowercase()) {
        base.insert(0, 's');
    }
    base.truncate(MAX_LEN - 4);
    base
}

/// The first of `base`, `base2`, `base3`, … that parses and is not in `taken`. When the number
/// no longer fits beside the base, the base is shortened, so there is always a next candidate
/// and, `taken` being finite, an answer.
pub fn unique_username(base: &str, taken: &HashSet<String>) -> Username {
    (1u64..)
        .map(|n| {
            if n == 1 {
                return base.to_string();
            }
            let number = n.to_string();
            let keep = base.len().min(MAX_LEN.saturating_sub(number.len())).max(1);
            format!("{}{number}", &base[..keep])
        })
        .filter(|cand| !taken.contains(cand))
        .find_map(|cand| Username::parse(&cand).ok())
        .expect("a numbered username is always free")
}

/// Names to offer instead of a reserved one, from the person's name: `admin` and "Ada
/// Lovelace" → `admin-ada`, `ada`, `adal`, then `admin-1` (unparsed: some may be reserved or
/// too long themselves).
pub fn reserved_candidates(reserved: &str, display_name: &str) -> Vec<String> {
    let ascii = deunicode::deunicode(display_name).to_ascii_lowercase();
    let first: String = ascii
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| w.starts_with(|c: char| c.is_ascii_lowercase()))
        .unwrap_or("")
        .chars()
        .take(MAX_LEN / 2)
        .collect();
    let mut candidates = Vec::new();
    if !first.is_empty() {
        candidates.push(format!("{reserved}-{first}"));
        candidates.push(first);
        candidates.push(username_base(display_name));
    }
    candidates.push(format!("{reserved}-1"));
    candidates
}

/// The first two [`reserved_candidates`] that parse (never reserved, never too long) and are
/// not in `taken`.
pub fn reserved_alternatives(
    reserved: &str,
    display_name: &str,
    taken: &[String],
) -> Vec<Username> {
    let mut out: Vec<Username> = Vec::new();
    for c in reserved_candidates(reserved, display_name) {
        if let Ok(u) = Username::parse(&c) {
            if !taken.contains(&c) && !out.contains(&u) {
                out.push(u);
            }
        }
    }
    out.truncate(2);
    out
}

/// "'admin' is reserved — try 'admin-ada' or 'ada'."
pub fn reserved_message(reserved: &str, alternatives: &[Username]) -> String {
    let quoted: Vec<String> = alternatives.iter().map(|u| format!("'{u}'")).collect();
    match quoted.as_slice() {
        [] => format!("'{reserved}' is reserved for the system: choose another username."),
        [one] => format!("'{reserved}' is reserved — try {one}."),
        [a, b, ..] => format!("'{reserved}' is reserved — try {a} or {b}."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_codes_read_plainly_and_match_however_they_are_typed() {
        let code = reset_code();
        assert_eq!(code.len(), 9, "{code}");
        assert_eq!(code.as_bytes()[4], b'-');
        assert!(code
            .chars()
            .filter(|c| *c != '-')
            .all(|c| CODE_CHARS.contains(&(c as u8))));
        assert!(!code.contains(['0', 'O', '1', 'I', 'L']), "{code}");
        assert_ne!(reset_code(), reset_code());
        assert_eq!(normalise_code(" kq7m 4txp "), "KQ7M4TXP");
        assert_eq!(normalise_code("KQ7M-4TXP"), "KQ7M4TXP");
    }

    #[test]
    fn a_reserved_name_comes_with_free_alternatives() {
        let alts = reserved_alternatives("admin", "Ada Lovelace", &[]);
        assert_eq!(
            reserved_message("admin", &alts),
            "'admin' is reserved — try 'admin-ada' or 'ada'."
        );
        let taken = vec!["ada".to_string()];
        let alts = reserved_alternatives("admin", "Ada Lovelace", &taken);
        assert_eq!(
            alts.iter().map(Username::as_str).collect::<Vec<_>>(),
            ["admin-ada", "adal"]
        );
        // A name that is itself reserved is skipped; no usable name gives a numbered one.
        let alts = reserved_alternatives("root", "Root", &[]);
        assert_eq!(
            alts.iter().map(Username::as_str).collect::<Vec<_>>(),
            ["root-root", "root-1"]
        );
        let alts = reserved_alternatives("admin", "  ", &[]);
        assert_eq!(
            alts.iter().map(Username::as_str).collect::<Vec<_>>(),
            ["admin-1"]
        );
        assert_eq!(
            reserved_message("admin", &[]),
            "'admin' is reserved for the system: choose another username."
        );
        let long = reserved_alternatives("administrator", "Maximiliana Wolfeschlegelstein", &[]);
        assert!(long.iter().all(|u| u.as_str().len() <= MAX_LEN), "{long:?}");
    }

    #[test]
    fn unique_username_shortens_the_base_when_the_number_grows() {
        let base = "abcdefghijklmnopqrstuvwxyzabcd"[..MAX_LEN - 4].to_string();
        let mut taken: HashSet<String> = HashSet::from([base.clone()]);
        taken.extend((2..=9999).map(|n| format!("{base}{n}")));
        let next = unique_username(&base, &taken);
        assert_eq!(next.as_str().len(), MAX_LEN);
        assert_eq!(next.as_str(), format!("{}10000", &base[..MAX_LEN - 5]));
    }

    #[test]
    fn passwords_are_readable_and_distinct() {
        let ps = passwords(500);
        assert_eq!(ps.iter().collect::<HashSet<_>>().len(), 500);
        for p in &ps {
            assert_eq!(p.len(), 17, "{p}");
            assert!(!p.contains(['l', 'o', '0', '1']), "{p}");
        }
    }

    #[test]
    fn username_from_names() {
        assert_eq!(username_base("Ada Lovelace"), "adal");
        assert_eq!(username_base("José  Núñez"), "josen");
        assert_eq!(username_base("Grace Brewster Hopper"), "graceh");
        assert_eq!(username_base("Zoë"), "zoe");
        assert_eq!(username_base("42 Wallaby"), "s42w");
        assert_eq!(username_base("!!!"), "student");
        assert!(username_base(&"x".repeat(80)).len() <= 28);
    }

    #[test]
    fn unique_username_numbers_collisions_and_skips_reserved() {
        let taken: HashSet<String> = ["adal".to_string(), "adal2".to_string()].into();
        assert_eq!(unique_username("adal", &taken).as_str(), "adal3");
        assert_eq!(unique_username("root", &HashSet::new()).as_str(), "root2");
    }
}
