//! Secrets: device tokens and enrollment codes are random, shown once, and stored only as
//! SHA-256 hashes; actor prefixes are random too.

use sha2::{Digest, Sha256};

/// Characters of an enrollment code: no 0/O, 1/I/L, so it can be read aloud and typed.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

fn random_bytes<const N: usize>() -> Result<[u8; N], String> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    Ok(bytes)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a secret, hex.
pub fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// A new device token (256 random bits, hex).
pub fn new_token() -> Result<String, String> {
    Ok(hex(&random_bytes::<32>()?))
}

/// A new actor prefix.
pub fn new_actor_prefix() -> Result<Vec<u8>, String> {
    Ok(random_bytes::<{ gridlink_core::sync::ACTOR_PREFIX_LEN }>()?.to_vec())
}

/// A new enrollment code: 12 characters in groups of four (about 59 bits).
pub fn new_enroll_code() -> Result<String, String> {
    let bytes = random_bytes::<12>()?;
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| char::from(CODE_ALPHABET[usize::from(*b) % CODE_ALPHABET.len()]))
        .collect();
    Ok(chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-"))
}

/// The form of a code that is hashed: upper case, no separators or spaces, so "abcd efgh"
/// and "ABCD-EFGH" are the same code.
pub fn normalize_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_normalize_and_tokens_differ() {
        let code = new_enroll_code().unwrap();
        assert_eq!(code.len(), 14);
        assert_eq!(
            normalize_code(&code.to_lowercase().replace('-', " ")),
            normalize_code(&code)
        );
        assert_ne!(new_token().unwrap(), new_token().unwrap());
        assert_eq!(hash_secret("a").len(), 64);
    }
}
