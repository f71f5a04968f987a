//! OAuth request parameters: a parameter sent twice is an error (RFC 6749 §3.1), and an empty
//! value counts as absent.
use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct Params {
    values: HashMap<String, String>,
    pub duplicates: Vec<String>,
}

impl Params {
    pub fn parse(encoded: &[u8]) -> Self {
        let mut p = Params::default();
        for (k, v) in url::form_urlencoded::parse(encoded) {
            if v.is_empty() {
                continue;
            }
            if p.values.insert(k.to_string(), v.to_string()).is_some()
                && !p.duplicates.contains(&k.to_string())
            {
                p.duplicates.push(k.to_string());
            }
        }
        p
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn duplicates_and_empties() {
        let p = Params::parse(b"a=1&b=&a=2&c=x%3D");
        assert_eq!(p.duplicates, vec!["a".to_string()]);
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), Some("x="));
    }
}
