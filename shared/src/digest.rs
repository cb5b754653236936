//! SHA-256 digests as lower-case hex: request signing (SigV4) and the keys
//! that must not hold what they name (rate-limit partitions).

use sha2::{Digest, Sha256};

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Lower-case hex (not `write!("{:02x}")` per byte: the formatter
/// machinery cost more than the hash on the rate limiter's keys).
pub fn hex(bytes: &[u8]) -> String {
    let digit = |n: u8| char::from_digit(u32::from(n), 16).unwrap_or('0');
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(digit(b >> 4));
        s.push(digit(b & 0xf));
    }
    s
}
