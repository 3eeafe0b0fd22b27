//! Human durations in the automation config: an integer and a unit, `90s`, `15m`, `4h`, `7d`
//! (a bare integer is seconds). Kept tiny on purpose: no fractions, no compound forms.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// A whole number of seconds written with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn secs(s: u64) -> HumanDuration {
        HumanDuration(Duration::from_secs(s))
    }

    pub fn parse(text: &str) -> Result<HumanDuration, String> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("`{text}` is not a duration (e.g. `90s`, `15m`, `4h`, `7d`)"))?;
        let scale = match unit.trim() {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            other => {
                return Err(format!(
                    "`{text}`: unknown unit `{other}` (use s, m, h or d)"
                ));
            }
        };
        n.checked_mul(scale)
            .map(HumanDuration::secs)
            .ok_or_else(|| format!("`{text}` is too long"))
    }

    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_secs();
        match s {
            0 => write!(f, "0s"),
            s if s % 86_400 == 0 => write!(f, "{}d", s / 86_400),
            s if s % 3600 == 0 => write!(f, "{}h", s / 3600),
            s if s % 60 == 0 => write!(f, "{}m", s / 60),
            s => write!(f, "{s}s"),
        }
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(n) => Ok(HumanDuration::secs(n)),
            Raw::Text(t) => HumanDuration::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_parse_and_print_back() {
        for (text, secs) in [
            ("90s", 90),
            ("15m", 900),
            ("4h", 14_400),
            ("7d", 604_800),
            ("5", 5),
        ] {
            let d = HumanDuration::parse(text).expect(text);
            assert_eq!(d.as_secs(), secs, "{text}");
        }
        assert_eq!(HumanDuration::secs(5400).to_string(), "90m");
        assert!(HumanDuration::parse("4 weeks").is_err());
        assert!(HumanDuration::parse("-3s").is_err());
        assert!(HumanDuration::parse("").is_err());
    }
}
