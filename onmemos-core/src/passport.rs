//! The format of API key secrets ("passports").
//!
//! A secret is `onm_` followed by 30 random base62 characters (≈178 bits from a CSPRNG) and a
//! 6-character base62 CRC-32 checksum of those characters:
//!
//! ```text
//! onm_ 7Gx0…(30 random)… 0a1B2c
//! └┬─┘ └──────┬────────┘ └─┬──┘
//! prefix   entropy      checksum
//! ```
//!
//! The checksum lets the server reject typos and garbage without a database lookup, and lets
//! secret scanners recognise leaked keys with few false positives. Only the SHA-256 digest of a
//! secret is ever stored; the secret itself is shown once, when the key is created.
//!
//! ```
//! use onmemos_core::passport::{KeyDigest, Secret};
//!
//! let secret = Secret::generate();
//! assert!(secret.expose().starts_with("onm_"));
//! let parsed = Secret::parse(secret.expose()).unwrap();
//! assert!(KeyDigest::of(&parsed).ct_eq(&KeyDigest::of(&secret)));
//! assert!(Secret::parse("onm_not-a-key").is_err());
//! ```

use std::fmt;

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The prefix every OnMemOS API key starts with.
pub const KEY_PREFIX: &str = "onm_";
const RANDOM_LEN: usize = 30;
const CHECKSUM_LEN: usize = 6;
/// The length of a whole secret.
pub const KEY_LEN: usize = KEY_PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;
/// How many leading characters of a secret are kept (in clear) to identify a key in lists.
pub const DISPLAY_PREFIX_LEN: usize = KEY_PREFIX.len() + 8;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a string is not a well-formed secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SecretFormatError {
    /// It does not start with `onm_`.
    #[error("API keys start with `onm_`")]
    Prefix,
    /// It has the wrong length.
    #[error("API keys are {KEY_LEN} characters long")]
    Length,
    /// It contains a character outside base62.
    #[error("API keys contain only letters and digits after `onm_`")]
    Charset,
    /// The checksum does not match (a typo, or a truncated key).
    #[error("the API key's checksum does not match (mistyped or truncated key)")]
    Checksum,
}

/// An API key secret. Its `Debug` and `Display` never show it; use [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A new random secret.
    pub fn generate() -> Self {
        let random: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(RANDOM_LEN)
            .map(char::from)
            .collect();
        let checksum = checksum(&random);
        Self(format!("{KEY_PREFIX}{random}{checksum}"))
    }

    /// Checks the form and checksum of `text` (no lookup).
    pub fn parse(text: &str) -> Result<Self, SecretFormatError> {
        let body = text
            .strip_prefix(KEY_PREFIX)
            .ok_or(SecretFormatError::Prefix)?;
        if text.len() != KEY_LEN {
            return Err(SecretFormatError::Length);
        }
        if !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(SecretFormatError::Charset);
        }
        let (random, sum) = body.split_at(RANDOM_LEN);
        if checksum(random).as_bytes().ct_eq(sum.as_bytes()).into() {
            Ok(Self(text.to_owned()))
        } else {
            Err(SecretFormatError::Checksum)
        }
    }

    /// The secret text. Show it to its owner once; never log or store it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The non-secret leading characters that identify the key in lists (`onm_Ab12Cd34`).
    pub fn display_prefix(&self) -> &str {
        &self.0[..DISPLAY_PREFIX_LEN]
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({}…)", self.display_prefix())
    }
}

/// The SHA-256 digest of a secret: what the database stores and looks keys up by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    /// The digest of a secret.
    pub fn of(secret: &Secret) -> Self {
        Self(Sha256::digest(secret.0.as_bytes()).into())
    }

    /// A digest from its 64-digit lowercase hex form (as stored).
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(out))
    }

    /// The 64-digit lowercase hex form.
    pub fn to_hex(&self) -> String {
        use fmt::Write;
        self.0.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    /// Compares two digests in constant time.
    pub fn ct_eq(&self, other: &KeyDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyDigest({}…)", &self.to_hex()[..12])
    }
}

fn checksum(random: &str) -> String {
    let mut n = u64::from(crc32fast::hash(random.as_bytes()));
    let mut digits = [b'0'; CHECKSUM_LEN];
    for d in digits.iter_mut().rev() {
        *d = BASE62[(n % 62) as usize];
        n /= 62;
    }
    digits.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Parsing never panics, whatever the text (multi-byte characters included).
        #[test]
        fn parsing_any_text_is_safe(text in "onm_.{0,40}|.{0,60}") {
            let _ = Secret::parse(&text);
        }

        /// Changing any one character of a key, or cutting it, makes it unparseable: the
        /// checksum catches a typo before any lookup.
        #[test]
        fn one_changed_character_is_caught(at in 4usize..KEY_LEN, to in "[a-zA-Z0-9]", cut in 0usize..KEY_LEN) {
            let key = Secret::generate();
            let text = key.expose();
            proptest::prop_assert_eq!(Secret::parse(text).ok(), Some(key.clone()));
            let mut changed = text.to_owned();
            changed.replace_range(at..at + 1, &to);
            proptest::prop_assert_eq!(Secret::parse(&changed).is_ok(), changed == text);
            proptest::prop_assert!(Secret::parse(&text[..cut]).is_err());
        }
    }

    #[test]
    fn generated_secrets_parse_and_are_distinct() {
        let a = Secret::generate();
        let b = Secret::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), KEY_LEN);
        assert_eq!(Secret::parse(a.expose()), Ok(a.clone()));
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn every_single_character_change_is_caught() {
        let secret = Secret::generate();
        let text = secret.expose();
        for i in KEY_PREFIX.len()..KEY_LEN {
            for replacement in ['0', 'Z', 'z'] {
                let mut changed: Vec<char> = text.chars().collect();
                if changed[i] == replacement {
                    continue;
                }
                changed[i] = replacement;
                let changed: String = changed.into_iter().collect();
                assert!(Secret::parse(&changed).is_err(), "{changed} accepted");
            }
        }
    }

    #[test]
    fn malformed_secrets_say_what_is_wrong() {
        let secret = Secret::generate();
        let text = secret.expose();
        assert_eq!(Secret::parse("sk_live_123"), Err(SecretFormatError::Prefix));
        assert_eq!(Secret::parse(&text[..30]), Err(SecretFormatError::Length));
        let with_dash = format!("{}-{}", &text[..10], &text[11..]);
        assert_eq!(Secret::parse(&with_dash), Err(SecretFormatError::Charset));
    }

    #[test]
    fn digest_hex_round_trips_and_compares() {
        let secret = Secret::generate();
        let digest = KeyDigest::of(&secret);
        assert_eq!(KeyDigest::from_hex(&digest.to_hex()), Some(digest));
        assert!(digest.ct_eq(&KeyDigest::of(&secret)));
        assert!(!digest.ct_eq(&KeyDigest::of(&Secret::generate())));
        assert_eq!(KeyDigest::from_hex("zz"), None);
    }
}
