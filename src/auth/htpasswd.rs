//! Users and passwords in htpasswd format (`user:$2y$...` per line), bcrypt hashes only: what
//! `htpasswd -B` writes. Verification runs bcrypt for unknown users too, so a wrong user name
//! takes as long as a wrong password.

use std::collections::HashMap;

pub struct Htpasswd {
    users: HashMap<String, String>,
}

/// A bcrypt hash of nothing useful, verified against when the user is unknown.
const DECOY: &str = "$2b$05$fflHjkMT2rFQa0PZCpjOauBgnlo1MzlqZcySdYQoDjPJSNg4WJcfO";

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
        Ok(Htpasswd { users })
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
                let _ = bcrypt::verify(password, DECOY);
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
    fn rejects_other_formats() {
        assert!(Htpasswd::parse("alice:{SHA}abc").is_err());
        assert!(Htpasswd::parse("alice:$apr1$x$y").is_err());
        assert!(Htpasswd::parse("nocolon").is_err());
    }
}
