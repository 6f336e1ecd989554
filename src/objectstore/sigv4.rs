//! AWS Signature Version 4 for S3, as a pure function: request parts,
//! credentials, region and time in; the headers to add out. Nothing here does
//! IO or reads the clock, so the published AWS examples are its tests.
//!
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html>

use ring::hmac;
use sha2::{Digest, Sha256};

use super::Credentials;

/// The service name in the credential scope; S3-compatible stores expect it too.
const SERVICE: &str = "s3";
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// sha256 of the empty string: the payload hash of requests without a body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// What the signature covers. `path` is already URI-encoded (see
/// [`encode_path`]) and is sent exactly like this; `query` holds the raw,
/// unencoded pairs (a flag such as `?uploads` is `("uploads", "")`).
#[derive(Debug, Clone)]
pub struct SigningRequest<'a> {
    pub method: &'a str,
    /// The Host header's value as sent (with the port when it is not the
    /// scheme's default).
    pub host: &'a str,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    /// Further headers to sign besides host, x-amz-content-sha256 and
    /// x-amz-date (e.g. range); names in any case.
    pub headers: &'a [(String, String)],
    /// Hex sha256 of the body, sent as x-amz-content-sha256.
    pub payload_sha256: &'a str,
}

/// The headers the request must carry besides `request.headers` and Host:
/// x-amz-date, x-amz-content-sha256 and authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub amz_date: String,
    pub content_sha256: String,
    pub authorization: String,
}

/// Signs `request` at `time` (the x-amz-date; servers reject clocks more than
/// 15 minutes apart).
pub fn sign(
    request: &SigningRequest<'_>,
    credentials: &Credentials,
    region: &str,
    time: jiff::Timestamp,
) -> SignedHeaders {
    let amz_date = time.strftime("%Y%m%dT%H%M%SZ").to_string();
    let date = &amz_date[..8];

    // Canonical headers: lowercase names, trimmed values, sorted by name.
    let mut headers: Vec<(String, String)> = vec![
        ("host".to_string(), request.host.trim().to_string()),
        (
            "x-amz-content-sha256".to_string(),
            request.payload_sha256.to_string(),
        ),
        ("x-amz-date".to_string(), amz_date.clone()),
    ];
    headers.extend(
        request
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), collapse_spaces(v.trim()))),
    );
    headers.sort();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();

    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        request.path,
        canonical_query(request.query),
        canonical_headers,
        signed_headers,
        request.payload_sha256
    );
    let scope = format!("{date}/{region}/{SERVICE}/aws4_request");
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );

    let k_date = hmac_sha256(
        format!("AWS4{}", credentials.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, SERVICE.as_bytes());
    let k_signing = hmac_sha256(&k_service, b"aws4_request");
    let signature = hex(&hmac_sha256(&k_signing, string_to_sign.as_bytes()));

    SignedHeaders {
        amz_date,
        content_sha256: request.payload_sha256.to_string(),
        authorization: format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            credentials.access_key_id
        ),
    }
}

/// The query string, canonical form: each name and value URI-encoded
/// (including '/'), pairs sorted. The client sends exactly this string, so
/// what is signed is what the server sees.
pub fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, true), uri_encode(v, true)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// An object key as a URI path: '/' kept, everything outside the unreserved
/// set percent-encoded (S3 signs the path encoded once, unlike other services).
pub fn encode_path(path: &str) -> String {
    uri_encode(path, false)
}

/// S3's UriEncode: unreserved characters (A-Z a-z 0-9 - . _ ~) stay, every
/// other byte of the UTF-8 form becomes %XX (uppercase); '/' too when
/// `encode_slash`.
pub fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b'/' if !encode_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Lowercase hex, as every hash in SigV4 is written.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::sign(&key, data).as_ref().to_vec()
}

/// Sequential spaces in a header value count as one in the canonical form.
fn collapse_spaces(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut last_space = false;
    for c in v.chars() {
        if c == ' ' {
            if !last_space {
                out.push(c);
            }
            last_space = true;
        } else {
            out.push(c);
            last_space = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws_example_credentials() -> Credentials {
        Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        }
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The examples of "Signature Calculations for the Authorization Header"
    /// in the S3 API reference (bucket examplebucket, 2013-05-24, us-east-1).
    #[test]
    fn signatures_match_the_published_aws_s3_examples() {
        let time: jiff::Timestamp = "2013-05-24T00:00:00Z".parse().unwrap();
        struct Case {
            name: &'static str,
            method: &'static str,
            path: String,
            query: Vec<(String, String)>,
            headers: Vec<(String, String)>,
            payload: &'static str,
            signed_headers: &'static str,
            signature: &'static str,
        }
        let cases = [
            Case {
                name: "GET object with a range",
                method: "GET",
                path: encode_path("/test.txt"),
                query: vec![],
                headers: pairs(&[("Range", "bytes=0-9")]),
                payload: EMPTY_SHA256,
                signed_headers: "host;range;x-amz-content-sha256;x-amz-date",
                signature: "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
            },
            Case {
                name: "PUT object: a key with '$', a payload, more headers",
                method: "PUT",
                path: encode_path("/test$file.text"),
                query: vec![],
                headers: pairs(&[
                    ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
                    ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
                ]),
                payload: "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
                signed_headers: "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
                signature: "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
            },
            Case {
                name: "GET bucket lifecycle: a query flag without value",
                method: "GET",
                path: "/".into(),
                query: pairs(&[("lifecycle", "")]),
                headers: vec![],
                payload: EMPTY_SHA256,
                signed_headers: "host;x-amz-content-sha256;x-amz-date",
                signature: "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
            },
            Case {
                name: "list objects: query parameters sorted",
                method: "GET",
                path: "/".into(),
                query: pairs(&[("prefix", "J"), ("max-keys", "2")]),
                headers: vec![],
                payload: EMPTY_SHA256,
                signed_headers: "host;x-amz-content-sha256;x-amz-date",
                signature: "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
            },
        ];
        for case in cases {
            let signed = sign(
                &SigningRequest {
                    method: case.method,
                    host: "examplebucket.s3.amazonaws.com",
                    path: &case.path,
                    query: &case.query,
                    headers: &case.headers,
                    payload_sha256: case.payload,
                },
                &aws_example_credentials(),
                "us-east-1",
                time,
            );
            assert_eq!(
                signed.authorization,
                format!(
                    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
                     SignedHeaders={}, Signature={}",
                    case.signed_headers, case.signature
                ),
                "{}",
                case.name
            );
            assert_eq!(signed.amz_date, "20130524T000000Z", "{}", case.name);
            assert_eq!(signed.content_sha256, case.payload, "{}", case.name);
        }
    }

    #[test]
    fn the_put_example_payload_hash_is_the_sha256_of_its_body() {
        assert_eq!(
            sha256_hex(b"Welcome to Amazon S3."),
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        );
        assert_eq!(sha256_hex(b""), EMPTY_SHA256);
    }

    #[test]
    fn uri_encoding_keeps_unreserved_characters_and_slashes_only_in_paths() {
        let cases = [
            ("/a/b.c_d-e~f", false, "/a/b.c_d-e~f"),
            ("/a/b.c_d-e~f", true, "%2Fa%2Fb.c_d-e~f"),
            ("a b+c=d&e", false, "a%20b%2Bc%3Dd%26e"),
            ("ümlaut", false, "%C3%BCmlaut"),
            ("x*y", false, "x%2Ay"),
            ("", false, ""),
        ];
        for (input, encode_slash, expected) in cases {
            assert_eq!(uri_encode(input, encode_slash), expected, "{input:?}");
        }
    }

    #[test]
    fn canonical_query_encodes_values_and_sorts_by_name() {
        let q = pairs(&[
            ("prefix", "backups/c1/"),
            ("list-type", "2"),
            ("continuation-token", "a+b/c="),
        ]);
        assert_eq!(
            canonical_query(&q),
            "continuation-token=a%2Bb%2Fc%3D&list-type=2&prefix=backups%2Fc1%2F"
        );
    }

    #[test]
    fn header_values_are_trimmed_and_inner_spaces_collapsed() {
        assert_eq!(collapse_spaces("a  b   c"), "a b c");
    }
}
