//! Reading Java `.properties` files, the format of Kafka's `server.properties`.

use std::collections::BTreeMap;

/// Parses properties text: `key=value`, `key: value` or `key value`; `#` and `!` comments;
/// a trailing backslash continues a line; `\t`, `\n`, `\r`, `\f`, `\\` and `\uXXXX` escapes.
pub fn parse(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut logical = String::new();
    for raw in text.lines() {
        let line = raw.trim_start();
        if logical.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!')) {
            continue;
        }
        let trailing_backslashes = line.chars().rev().take_while(|&c| c == '\\').count();
        if trailing_backslashes % 2 == 1 {
            logical.push_str(&line[..line.len() - 1]);
            continue;
        }
        logical.push_str(line);
        let (key, value) = split(&logical);
        out.insert(unescape(&key), unescape(&value));
        logical.clear();
    }
    if !logical.is_empty() {
        let (key, value) = split(&logical);
        out.insert(unescape(&key), unescape(&value));
    }
    out
}

/// Splits at the first unescaped `=`, `:` or whitespace, skipping whitespace around it.
fn split(line: &str) -> (String, String) {
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' => return (line[..i].trim_end().to_owned(), line[i + 1..].trim_start().to_owned()),
            c if c.is_whitespace() => {
                let rest = line[i..].trim_start();
                let rest = rest.strip_prefix(['=', ':']).unwrap_or(rest).trim_start();
                return (line[..i].to_owned(), rest.to_owned());
            }
            _ => {}
        }
    }
    (line.to_owned(), String::new())
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                if let Some(c) = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    out.push(c);
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafkas_server_properties_habits() {
        let text = "# Kafka\n! also a comment\nnode.id=1\nlisteners = PLAINTEXT://127.0.0.1:9092\nlog.dirs: /tmp/a,\\\n   /tmp/b\nkey\\=with\\=equals=v\nspaced value\nempty=\n";
        let props = parse(text);
        assert_eq!(props["node.id"], "1");
        assert_eq!(props["listeners"], "PLAINTEXT://127.0.0.1:9092");
        assert_eq!(props["log.dirs"], "/tmp/a,/tmp/b");
        assert_eq!(props["key=with=equals"], "v");
        assert_eq!(props["spaced"], "value");
        assert_eq!(props["empty"], "");
        assert_eq!(props.len(), 6);
    }
}
