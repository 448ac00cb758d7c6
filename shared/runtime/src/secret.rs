//! Secret values travel as [`SecretString`] (from the `secrecy` crate): its `Debug`
//! prints `[REDACTED]`, it has no `Display`, it is zeroed on drop, and reading it takes
//! an explicit `expose_secret()` that a reviewer can search for.

pub use secrecy::{ExposeSecret, SecretString};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = SecretString::from("hunter2-very-secret");
        let shown = format!("{secret:?} {:?}", Some(&secret));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(secret.expose_secret(), "hunter2-very-secret");
    }
}
