//! Users and passwords in htpasswd format (`user:$2y$...` per line), bcrypt hashes only: what
//! `htpasswd -B` writes. Verification runs bcrypt for unknown users too, against the costliest
//! stored hash (the decoy), so a wrong user name takes as long as a wrong password: bcrypt's
//! time doubles with each cost step, and a decoy of a fixed low cost answered unknown users ten
//! times faster than known ones (user names could be enumerated).

use std::collections::HashMap;

pub struct Htpasswd {
    users: HashMap<String, String>,
    /// The stored hash of the highest cost, verified against when the user is unknown (no
    /// password is ever accepted through it).
    decoy: Option<String>,
}

/// The cost of a bcrypt hash (`$2b$<cost>$...`), 0 if it does not say.
fn cost_of(hash: &str) -> u32 {
    hash.split('$').nth(2).and_then(|c| c.parse().ok()).unwrap_or(0)
}

impl Htpasswd {
    /// Parses the file; lines that are blank or comments are skipped, others must be
    /// `user:<bcrypt hash>`.
    pub fn parse(text: &str) -> Result<Htpasswd, String> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = line.split_once(':').ok_or_else(|| format!("htpasswd line {}: no ':'", i + 1))?;
            if !(hash.starts_with("$2y$") || hash.starts_with("$2b$") || hash.starts_with("$2a$")) {
                return Err(format!("htpasswd line {}: user {user:?} has no bcrypt hash (use htpasswd -B)", i + 1));
            }
            users.insert(user.to_string(), hash.to_string());
        }
        let decoy = users.values().max_by_key(|h| cost_of(h)).cloned();
        Ok(Htpasswd { users, decoy })
    }

    /// The stored hash of `user`, if any (a cache key for verified credentials).
    pub fn hash_of(&self, user: &str) -> Option<&str> {
        self.users.get(user).map(String::as_str)
    }

    /// Whether `password` is `user`'s.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        match self.users.get(user) {
            Some(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            None => {
                if let Some(decoy) = &self.decoy {
                    let _ = bcrypt::verify(password, decoy);
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# test users\nalice:$2b$05$fflHjkMT2rFQa0PZCpjOauBgnlo1MzlqZcySdYQoDjPJSNg4WJcfO\n\nbob:$2b$05$Xcjef/yN/P6hyz5p6dWGy.YLcBR3QhddGgUemzt8BWyQj3JKPlmpK\n";

    #[test]
    fn verifies_bcrypt() {
        let h = Htpasswd::parse(FILE).unwrap();
        assert_eq!(h.users.len(), 2);
        assert!(h.verify("alice", "alice-pw"));
        assert!(h.verify("bob", "bob-pw"));
        assert!(!h.verify("alice", "bob-pw"));
        assert!(!h.verify("carol", "alice-pw"));
        assert_eq!(h.hash_of("alice"), Some("$2b$05$fflHjkMT2rFQa0PZCpjOauBgnlo1MzlqZcySdYQoDjPJSNg4WJcfO"));
        assert_eq!(h.hash_of("carol"), None);
        assert!(!h.verify("alice", ""));
    }

    #[test]
    fn unknown_users_are_verified_against_the_costliest_hash() {
        let cost12 = "$2b$12$abcdefghijklmnopqrstuuSZgdXd1Hhj7eBQbEfqEpn2MRDMGD0Ae";
        let h = Htpasswd::parse(&format!("{FILE}carol:{cost12}\n")).unwrap();
        assert_eq!(h.decoy.as_deref(), Some(cost12));
        assert_eq!(Htpasswd::parse(FILE).unwrap().decoy.as_deref().map(cost_of), Some(5));
        assert_eq!(cost_of(cost12), 12);
        assert_eq!(cost_of("$2b$x$"), 0);
        assert!(Htpasswd::parse("").unwrap().decoy.is_none());
        // Not even the decoy's own password opens an unknown user.
        let file = Htpasswd::parse(FILE).unwrap();
        assert!(!file.verify("mallory", "alice-pw") && !file.verify("mallory", "bob-pw"));
    }

    #[test]
    fn rejects_other_formats() {
        assert!(Htpasswd::parse("alice:{SHA}abc").is_err());
        assert!(Htpasswd::parse("alice:$apr1$x$y").is_err());
        assert!(Htpasswd::parse("nocolon").is_err());
    }
}
