//! The few fields Sakila reads from S3's XML replies, parsed by hand: the
//! replies are flat and machine-written, and a full XML parser would be a
//! dependency for four element names.

use super::ObjectInfo;

/// The text of the first `<tag>...</tag>` in `xml`, entities decoded;
/// `Some("")` for `<tag/>`.
pub fn element(xml: &str, tag: &str) -> Option<String> {
    elements_raw(xml, tag).next().map(unescape)
}

/// The raw (still escaped) contents of every `<tag>...</tag>` at any depth.
fn elements_raw<'a>(xml: &'a str, tag: &str) -> impl Iterator<Item = &'a str> + 'a {
    let open = format!("<{tag}>");
    let open_attrs = format!("<{tag} ");
    let empty = format!("<{tag}/>");
    let close = format!("</{tag}>");
    let start_tag = format!("<{tag}");
    let mut rest = xml;
    std::iter::from_fn(move || {
        loop {
            let start = rest.find(&start_tag)?;
            let after = &rest[start..];
            if after.starts_with(&empty) {
                rest = &after[empty.len()..];
                return Some("");
            }
            let body_start = if after.starts_with(&open) {
                open.len()
            } else if after.starts_with(&open_attrs) {
                after.find('>')? + 1
            } else {
                // A longer name with the same beginning (<Key> vs <KeyCount>).
                rest = &after[1..];
                continue;
            };
            let body = &after[body_start..];
            let end = body.find(&close)?;
            rest = &body[end + close.len()..];
            return Some(&body[..end]);
        }
    })
}

/// One page of ListObjectsV2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    pub objects: Vec<ObjectInfo>,
    /// Set when the listing is truncated: the token for the next page.
    pub next_token: Option<String>,
}

pub fn parse_list_page(xml: &str) -> Result<ListPage, String> {
    let mut objects = Vec::new();
    for contents in elements_raw(xml, "Contents") {
        let key = element(contents, "Key").ok_or("a <Contents> without <Key>")?;
        let size = element(contents, "Size").unwrap_or_default();
        let size_bytes = size
            .trim()
            .parse()
            .map_err(|_| format!("object {key:?} has a size that is not a number: {size:?}"))?;
        objects.push(ObjectInfo {
            key,
            size_bytes,
            last_modified: element(contents, "LastModified").unwrap_or_default(),
        });
    }
    let truncated = element(xml, "IsTruncated").is_some_and(|t| t.trim() == "true");
    let next_token = if truncated {
        Some(
            element(xml, "NextContinuationToken")
                .filter(|t| !t.is_empty())
                .ok_or("a truncated listing without <NextContinuationToken>")?,
        )
    } else {
        None
    };
    Ok(ListPage {
        objects,
        next_token,
    })
}

/// The `<Code>` and `<Message>` of an `<Error>` reply, if the body is one.
pub fn parse_error(xml: &str) -> Option<(String, String)> {
    let error = elements_raw(xml, "Error").next()?;
    Some((
        element(error, "Code").unwrap_or_default(),
        element(error, "Message").unwrap_or_default(),
    ))
}

/// The body of CompleteMultipartUpload: each part's number and ETag.
pub fn complete_multipart_body(etags: &[String]) -> String {
    let mut out = String::from("<CompleteMultipartUpload>");
    for (i, etag) in etags.iter().enumerate() {
        out.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
            i + 1,
            escape(etag)
        ));
    }
    out.push_str("</CompleteMultipartUpload>");
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Decodes the five predefined entities and numeric character references.
fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let Some(end) = after.find(';') else {
            out.push_str(after);
            return out;
        };
        let entity = &after[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>c1/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated><NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken><Contents><Key>c1/a&amp;b.sql</Key><LastModified>2026-11-29T04:00:00.000Z</LastModified><ETag>&#34;abc&#34;</ETag><Size>42</Size><StorageClass>STANDARD</StorageClass></Contents><Contents><Key>c1/b</Key><LastModified>2026-11-29T04:00:01.000Z</LastModified><Size>0</Size></Contents></ListBucketResult>"#;

    #[test]
    fn a_list_page_yields_its_objects_and_the_next_token_when_truncated() {
        let page = parse_list_page(PAGE).unwrap();
        assert_eq!(
            page,
            ListPage {
                objects: vec![
                    ObjectInfo {
                        key: "c1/a&b.sql".into(),
                        size_bytes: 42,
                        last_modified: "2026-11-29T04:00:00.000Z".into()
                    },
                    ObjectInfo {
                        key: "c1/b".into(),
                        size_bytes: 0,
                        last_modified: "2026-11-29T04:00:01.000Z".into()
                    },
                ],
                next_token: Some("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=".into()),
            }
        );
    }

    #[test]
    fn the_last_page_has_no_next_token_and_an_empty_listing_no_objects() {
        let last = PAGE.replace("<IsTruncated>true", "<IsTruncated>false");
        assert_eq!(parse_list_page(&last).unwrap().next_token, None);
        let empty = r#"<ListBucketResult><Name>b</Name><Prefix/><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>"#;
        assert_eq!(
            parse_list_page(empty).unwrap(),
            ListPage {
                objects: vec![],
                next_token: None
            }
        );
    }

    #[test]
    fn a_truncated_listing_without_a_token_is_an_error_not_an_endless_loop() {
        let broken = PAGE.replace("NextContinuationToken", "Other");
        assert!(parse_list_page(&broken).is_err());
    }

    #[test]
    fn error_replies_yield_code_and_message() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>x</BucketName><RequestId>1</RequestId></Error>"#;
        assert_eq!(
            parse_error(xml),
            Some((
                "NoSuchBucket".into(),
                "The specified bucket does not exist".into()
            ))
        );
        assert_eq!(parse_error(PAGE), None);
        assert_eq!(parse_error(""), None);
    }

    #[test]
    fn element_does_not_match_a_longer_name_with_the_same_start() {
        assert_eq!(
            element("<KeyCount>2</KeyCount><Key>k</Key>", "Key").as_deref(),
            Some("k")
        );
    }

    #[test]
    fn entities_are_decoded_and_unknown_ones_kept() {
        let cases = [
            ("a&amp;b", "a&b"),
            ("&lt;&gt;&quot;&apos;", "<>\"'"),
            ("&#34;x&#x22;", "\"x\""),
            ("a&b", "a&b"),
            ("a&bogus;b", "a&bogus;b"),
        ];
        for (input, expected) in cases {
            assert_eq!(unescape(input), expected, "{input}");
        }
    }

    #[test]
    fn the_complete_body_numbers_parts_from_one_and_escapes_etags() {
        assert_eq!(
            complete_multipart_body(&["\"e1\"".into(), "\"e2\"".into()]),
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;e1&quot;</ETag></Part>\
             <Part><PartNumber>2</PartNumber><ETag>&quot;e2&quot;</ETag></Part></CompleteMultipartUpload>"
        );
    }
}
