//! A cohort's profile: what each of its notebooks gets on the swarm (a memory reservation and
//! limit, a CPU limit) and how long an idle server is kept. Written as people write them:
//! "2 GiB", "1.5G", "512 MiB", "0.5" CPUs, "60" minutes.

/// Bounds the database also checks (migration 0040).
const MIN_MIB: u32 = 64;
const MAX_MIB: u32 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    pub memory_guarantee_mib: u32,
    pub memory_limit_mib: u32,
    pub cpu_limit_millis: u32,
    pub idle_timeout_mins: u32,
}

impl Default for Profile {
    /// What the shipped hub configuration gives a notebook when hubdesk does not say
    /// (`HUB_MEM_GUARANTEE`, `HUB_MEM_LIMIT`, `HUB_CPU_LIMIT`: 2 GiB, 2 GiB, 2 CPUs) and the
    /// cluster's capacity figure (`[cluster] notebook_memory_bytes`), stopped after an hour idle.
    fn default() -> Self {
        Profile {
            memory_guarantee_mib: 2048,
            memory_limit_mib: 2048,
            cpu_limit_millis: 2000,
            idle_timeout_mins: 60,
        }
    }
}

/// Which field is wrong, and why (the form shows it beside the field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("{0}: write a size such as 2 GiB or 512 MiB")]
    BadSize(&'static str),
    #[error("{0}: between 64 MiB and 1 TiB")]
    SizeOutOfRange(&'static str),
    #[error("the limit must be at least the guarantee")]
    LimitBelowGuarantee,
    #[error("write the number of CPUs, between 0.1 and 256 (such as 1 or 0.5)")]
    BadCpu,
    #[error("write the minutes, between 5 and 10080 (a week)")]
    BadIdle,
}

impl ProfileError {
    /// The form field the message belongs to.
    pub fn field(&self) -> &'static str {
        match self {
            ProfileError::BadSize(f) | ProfileError::SizeOutOfRange(f) => f,
            ProfileError::LimitBelowGuarantee => "memory_limit",
            ProfileError::BadCpu => "cpu_limit",
            ProfileError::BadIdle => "idle_timeout",
        }
    }
}

/// "2 GiB", "2G", "2gb", "1.5 GiB", "512 MiB", "512M" → MiB. A bare number is GiB (what the
/// form's unit says). Binary units throughout: a worker's memory is counted that way.
pub fn parse_mib(raw: &str, field: &'static str) -> Result<u32, ProfileError> {
    let s = raw.trim().to_ascii_lowercase().replace(' ', "");
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| ProfileError::BadSize(field))?;
    let factor = match unit {
        "" | "g" | "gb" | "gi" | "gib" => 1024.0,
        "m" | "mb" | "mi" | "mib" => 1.0,
        "t" | "tb" | "ti" | "tib" => 1024.0 * 1024.0,
        _ => return Err(ProfileError::BadSize(field)),
    };
    let mib = (n * factor).round();
    if !mib.is_finite() || mib < f64::from(MIN_MIB) || mib > f64::from(MAX_MIB) {
        return Err(ProfileError::SizeOutOfRange(field));
    }
    Ok(mib as u32)
}

/// "1.5 GiB", "512 MiB": as the page shows a size.
pub fn show_mib(mib: u32) -> String {
    if mib.is_multiple_of(1024) {
        format!("{} GiB", mib / 1024)
    } else if mib >= 1024 {
        let g = f64::from(mib) / 1024.0;
        format!("{} GiB", (g * 100.0).round() / 100.0)
    } else {
        format!("{mib} MiB")
    }
}

/// "1", "0.5": as the page shows CPUs.
pub fn show_cpus(millis: u32) -> String {
    let s = format!("{:.3}", f64::from(millis) / 1000.0);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

impl Profile {
    /// The profile form's four fields; the first wrong one is reported (each names its field).
    pub fn parse(
        guarantee: &str,
        limit: &str,
        cpus: &str,
        idle_minutes: &str,
    ) -> Result<Profile, Vec<ProfileError>> {
        let mut errors = Vec::new();
        let g = parse_mib(guarantee, "memory_guarantee").map_err(|e| errors.push(e));
        let l = parse_mib(limit, "memory_limit").map_err(|e| errors.push(e));
        let c = cpus
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|c| (0.1..=256.0).contains(c))
            .map(|c| (c * 1000.0).round() as u32)
            .ok_or(ProfileError::BadCpu)
            .map_err(|e| errors.push(e));
        let i = idle_minutes
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|m| (5..=10080).contains(m))
            .ok_or(ProfileError::BadIdle)
            .map_err(|e| errors.push(e));
        if let (Ok(g), Ok(l)) = (g, l) {
            if l < g {
                errors.push(ProfileError::LimitBelowGuarantee);
            }
        }
        match (g, l, c, i, errors.is_empty()) {
            (Ok(g), Ok(l), Ok(c), Ok(i), true) => Ok(Profile {
                memory_guarantee_mib: g,
                memory_limit_mib: l,
                cpu_limit_millis: c,
                idle_timeout_mins: i,
            }),
            _ => Err(errors),
        }
    }

    pub fn memory_guarantee_bytes(&self) -> u64 {
        u64::from(self.memory_guarantee_mib) << 20
    }

    pub fn memory_limit_bytes(&self) -> u64 {
        u64::from(self.memory_limit_mib) << 20
    }

    /// Docker's `NanoCPUs` for the service's limit.
    pub fn nano_cpus(&self) -> u64 {
        u64::from(self.cpu_limit_millis) * 1_000_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_people_write_them() {
        assert_eq!(parse_mib("2 GiB", "f"), Ok(2048));
        assert_eq!(parse_mib("2", "f"), Ok(2048));
        assert_eq!(parse_mib("1.5G", "f"), Ok(1536));
        assert_eq!(parse_mib("512 MiB", "f"), Ok(512));
        assert_eq!(parse_mib("512m", "f"), Ok(512));
        assert_eq!(parse_mib("lots", "f"), Err(ProfileError::BadSize("f")));
        assert_eq!(parse_mib("2 PB", "f"), Err(ProfileError::BadSize("f")));
        assert_eq!(
            parse_mib("10 MiB", "f"),
            Err(ProfileError::SizeOutOfRange("f"))
        );
        assert_eq!(parse_mib("", "f"), Err(ProfileError::BadSize("f")));
    }

    #[test]
    fn sizes_and_cpus_show_back() {
        assert_eq!(show_mib(2048), "2 GiB");
        assert_eq!(show_mib(1536), "1.5 GiB");
        assert_eq!(show_mib(512), "512 MiB");
        assert_eq!(show_cpus(1000), "1");
        assert_eq!(show_cpus(500), "0.5");
        assert_eq!(show_cpus(1250), "1.25");
        // What the page shows parses back to the same profile.
        let p = Profile::default();
        let again = Profile::parse(
            &show_mib(p.memory_guarantee_mib),
            &show_mib(p.memory_limit_mib),
            &show_cpus(p.cpu_limit_millis),
            &p.idle_timeout_mins.to_string(),
        );
        assert_eq!(again, Ok(p));
    }

    #[test]
    fn a_profile_names_every_wrong_field() {
        let e = Profile::parse("4 GiB", "2 GiB", "0", "1").unwrap_err();
        let fields: Vec<&str> = e.iter().map(ProfileError::field).collect();
        assert_eq!(fields, vec!["cpu_limit", "idle_timeout", "memory_limit"]);
        let p = Profile::parse("2", "4", "0.5", "45").unwrap();
        assert_eq!(p.memory_guarantee_bytes(), 2 << 30);
        assert_eq!(p.nano_cpus(), 500_000_000);
    }
}
