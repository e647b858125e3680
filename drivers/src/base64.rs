//! Base64 (RFC 4648) encoding, the two forms the drivers send: standard with padding, for HTTP
//! Basic credentials, and URL-safe without padding, for a certificate's thumbprint in a JWT
//! header.

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Standard base64 with padding (RFC 4648 §4).
pub(crate) fn standard(bytes: &[u8]) -> String {
    encode(bytes, STANDARD, true)
}

/// URL-safe base64 without padding (RFC 4648 §5, as JOSE uses it).
pub(crate) fn url_safe(bytes: &[u8]) -> String {
    encode(bytes, URL_SAFE, false)
}

fn encode(bytes: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_encode_as_rfc_4648() {
        assert_eq!(standard(b""), "");
        assert_eq!(standard(b"f"), "Zg==");
        assert_eq!(standard(b"fo"), "Zm8=");
        assert_eq!(standard(b"foo"), "Zm9v");
        assert_eq!(standard(b"client:secret"), "Y2xpZW50OnNlY3JldA==");
        assert_eq!(url_safe(b"f"), "Zg");
        assert_eq!(url_safe(b"fo"), "Zm8");
        assert_eq!(url_safe(&[0xfb, 0xff, 0xbf]), "-_-_");
        assert_eq!(standard(&[0xfb, 0xff, 0xbf]), "+/+/");
    }
}
