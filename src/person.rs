//! The person behind a device key: a display name, and optionally an email address and an
//! ORCID iD. Signed into identity cards (`trust::Card`) and recorded in commits
//! (`object::CommitBody`), so `log`, `show`, `grants` and the gateway can say
//! `Ana Lee <ana@lab.org> (604a738c)` instead of a bare key.
//!
//! A name is a claim, not a proof: anyone can sign any name with their own key. What lode
//! verifies is the key; the name only says whom its holder claims to be (docs/SECURITY.md).
//!
//! Pure. Invariant: a `Person` that decodes is valid ([`Person::check`]): a name of 1 to 128
//! bytes, trimmed, without control characters or `<` `>`; an email of at most 254 bytes, one
//! `@` between non-empty parts, without spaces, control characters or `<` `>`; an ORCID iD in
//! its canonical form `0000-0002-1825-0097` with a valid ISO 7064 11,2 check digit.

use serde::{Deserialize, Serialize};

/// Longest name, in bytes.
pub const MAX_NAME: usize = 128;
/// Longest email address, in bytes (RFC 5321's path limit).
pub const MAX_EMAIL: usize = 254;

/// Who claims a device key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub name: String,
    pub email: Option<String>,
    /// An ORCID iD, `0000-0002-1825-0097` (no `https://orcid.org/` prefix).
    pub orcid: Option<String>,
}

impl Person {
    /// Makes a checked person; an ORCID given as a URL (`https://orcid.org/…`) is reduced to
    /// its iD.
    pub fn new(name: &str, email: Option<&str>, orcid: Option<&str>) -> Result<Person, String> {
        let p = Person {
            name: name.trim().to_string(),
            email: email.map(|e| e.trim().to_string()),
            orcid: orcid.map(|o| {
                let o = o.trim();
                o.strip_prefix("https://orcid.org/")
                    .or_else(|| o.strip_prefix("http://orcid.org/"))
                    .or_else(|| o.strip_prefix("orcid.org/"))
                    .unwrap_or(o)
                    .to_ascii_uppercase()
            }),
        };
        p.check()?;
        Ok(p)
    }

    /// Checks the invariant; the error names the field and what is wrong with it.
    pub fn check(&self) -> Result<(), String> {
        let plain = |s: &str| !s.chars().any(|c| c.is_control() || c == '<' || c == '>');
        if self.name.is_empty() || self.name.len() > MAX_NAME {
            return Err(format!("a name has 1 to {MAX_NAME} bytes"));
        }
        if self.name.trim() != self.name || !plain(&self.name) {
            return Err(format!(
                "name {:?}: no leading or trailing spaces, control characters, `<` or `>`",
                self.name
            ));
        }
        if let Some(e) = &self.email {
            let ok = e.len() <= MAX_EMAIL
                && plain(e)
                && !e.contains(char::is_whitespace)
                && e.split_once('@').is_some_and(|(local, domain)| {
                    !local.is_empty() && !domain.is_empty() && !domain.contains('@')
                });
            if !ok {
                return Err(format!(
                    "email {e:?} is not an address like ana@lab.org (at most {MAX_EMAIL} bytes)"
                ));
            }
        }
        if let Some(o) = &self.orcid {
            if !valid_orcid(o) {
                return Err(format!(
                    "ORCID iD {o:?} is not of the form 0000-0002-1825-0097 with a valid check digit"
                ));
            }
        }
        Ok(())
    }

    /// `Ana Lee <ana@lab.org> (604a738c)`: the name, the email when there is one, and the
    /// first 8 hex digits of the key it was signed with.
    pub fn label(&self, key: &[u8; 32]) -> String {
        let mut s = self.name.clone();
        if let Some(e) = &self.email {
            s.push_str(&format!(" <{e}>"));
        }
        s.push_str(&format!(" ({})", &hex::encode(key)[..8]));
        s
    }
}

/// How a key is shown: its person's label, or the whole key in hex when none is known.
pub fn who(person: Option<&Person>, key: &[u8; 32]) -> String {
    match person {
        Some(p) => p.label(key),
        None => hex::encode(key),
    }
}

/// Whether `s` is an ORCID iD in canonical form: 16 digits in four groups of four joined by
/// `-`, the last one possibly `X`, with the ISO 7064 MOD 11-2 check digit ORCID uses.
pub fn valid_orcid(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 19 || [4, 9, 14].iter().any(|&i| b[i] != b'-') {
        return false;
    }
    let digits: Vec<u8> = b.iter().copied().filter(|&c| c != b'-').collect();
    if digits.len() != 16 || !digits[..15].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut total: u32 = 0;
    for d in &digits[..15] {
        total = (total + u32::from(d - b'0')) * 2;
    }
    let check = (12 - total % 11) % 11;
    let want = if check == 10 {
        b'X'
    } else {
        b'0' + check as u8
    };
    digits[15] == want
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orcid_check_digits() {
        // ORCID's own examples.
        assert!(valid_orcid("0000-0002-1825-0097"));
        assert!(valid_orcid("0000-0001-5109-3700"));
        assert!(valid_orcid("0000-0002-1694-233X"));
        assert!(!valid_orcid("0000-0002-1825-0098"));
        assert!(!valid_orcid("0000000218250097"));
        assert!(!valid_orcid("0000-0002-1825-009"));
        assert!(!valid_orcid("0000-0002-1694-233x"));
    }

    #[test]
    fn people_are_checked_and_labelled() {
        let p = Person::new(
            " Ana Lee ",
            Some("ana@lab.org"),
            Some("https://orcid.org/0000-0002-1694-233x"),
        )
        .unwrap();
        assert_eq!(p.name, "Ana Lee");
        assert_eq!(p.orcid.as_deref(), Some("0000-0002-1694-233X"));
        assert_eq!(p.label(&[0x60; 32]), "Ana Lee <ana@lab.org> (60606060)");
        for (n, e) in [
            ("", None),
            ("A\nB", None),
            ("<script>", None),
            ("Ana", Some("ana")),
            ("Ana", Some("a b@c")),
            ("Ana", Some("a@b@c")),
            ("Ana", Some("@b")),
        ] {
            assert!(Person::new(n, e, None).is_err(), "{n:?} {e:?}");
        }
        assert!(Person::new(&"x".repeat(129), None, None).is_err());
        assert_eq!(who(None, &[1; 32]), hex::encode([1u8; 32]));
    }
}
