//! Connection strings: removing passwords before anything is logged or reported.

/// Removes any password from a DSN, in URL form (`postgresql://user:pw@…`,
/// `?password=…`) or key=value form (`password=pw`, `password = 'p w'`),
/// replacing it with `********`.
///
/// ```
/// use chaos_core::dsn::redact;
/// assert_eq!(redact("postgresql://app:s3cret@db/x"), "postgresql://app@db/x");
/// assert_eq!(redact("host=db password='a b' user=app"), "host=db password=******** user=app");
/// ```
pub fn redact(dsn: &str) -> String {
    let trimmed = dsn.trim_start();
    for scheme in ["postgresql://", "postgres://"] {
        if let Some(rest) = trimmed.strip_prefix(scheme) {
            return format!("{scheme}{}", redact_url(rest));
        }
    }
    redact_key_values(dsn)
}

/// Removes passwords from free text such as a shell command: every
/// `postgres://`/`postgresql://` URL in it loses its password, and the value
/// after `password=`, `password:` or `PGPASSWORD=` (any case) becomes
/// `********`.
///
/// ```
/// use chaos_core::dsn::redact_text;
/// assert_eq!(
///     redact_text("PGPASSWORD=x psql 'postgresql://u:pw@h/db' -c 'select 1'"),
///     "PGPASSWORD=******** psql 'postgresql://u@h/db' -c 'select 1'"
/// );
/// ```
pub fn redact_text(text: &str) -> String {
    let ends = |c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '`' | ';' | '&' | '|');
    // URLs first.
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = ["postgresql://", "postgres://"]
        .iter()
        .filter_map(|s| rest.find(s).map(|i| (i, s.len())))
        .min()
        .map(|(i, _)| i)
    {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let end = tail.find(ends).unwrap_or(tail.len());
        out.push_str(&redact(&tail[..end]));
        rest = &tail[end..];
    }
    out.push_str(rest);
    // Then `password=value` in any case.
    let lower = out.to_ascii_lowercase();
    let mut result = String::with_capacity(out.len());
    let mut last = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find("password") {
        let key_end = search + found + "password".len();
        let after = &out[key_end..];
        let sep = after.len() - after.trim_start_matches([' ', '=', ':']).len();
        if sep == 0 || !after[..sep].contains(['=', ':']) {
            search = key_end;
            continue;
        }
        let value_start = key_end + sep;
        let len = value_len(&out[value_start..], ends);
        result.push_str(&out[last..value_start]);
        result.push_str("********");
        last = value_start + len;
        search = last;
    }
    result.push_str(&out[last..]);
    result
}

fn redact_url(rest: &str) -> String {
    // The user info ends at the last '@' before the path or query that follows
    // the first '@' (a password may itself contain '@', '/' or '?').
    let (userinfo, after) = match rest.find('@') {
        Some(first) => {
            let end = rest[first..]
                .find(['/', '?'])
                .map_or(rest.len(), |i| first + i);
            let at = rest[..end].rfind('@').unwrap_or(first);
            (Some(&rest[..at]), &rest[at + 1..])
        }
        None => (None, rest),
    };
    let auth_end = after.find(['/', '?']).unwrap_or(after.len());
    let (hosts, tail) = after.split_at(auth_end);
    let authority = match userinfo {
        Some(u) => format!("{}@{hosts}", u.split(':').next().unwrap_or_default()),
        None => hosts.to_string(),
    };
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    let query = query.map(|q| {
        q.split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=********"),
                _ => kv.to_string(),
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    match query {
        Some(q) => format!("{authority}{path}?{q}"),
        None => format!("{authority}{path}"),
    }
}

/// `key = value` pairs as libpq reads them: spaces around `=` allowed, values
/// optionally quoted, with backslash escapes (see [`value_len`]).
fn redact_key_values(dsn: &str) -> String {
    let mut out = String::with_capacity(dsn.len());
    let mut rest = dsn;
    loop {
        let space = rest.len() - rest.trim_start().len();
        out.push_str(&rest[..space]);
        rest = &rest[space..];
        if rest.is_empty() {
            return out;
        }
        let key_len = rest
            .find(|c: char| c.is_whitespace() || c == '=')
            .unwrap_or(rest.len());
        let (key, after_key) = rest.split_at(key_len);
        let before_eq = after_key.len() - after_key.trim_start().len();
        let Some(after_eq) = after_key[before_eq..].strip_prefix('=') else {
            out.push_str(key);
            out.push_str(&after_key[..before_eq]);
            rest = &after_key[before_eq..];
            continue;
        };
        let after_sep = after_eq.len() - after_eq.trim_start().len();
        let value = &after_eq[after_sep..];
        let len = value_len(value, char::is_whitespace);
        out.push_str(key);
        if key.eq_ignore_ascii_case("password") {
            out.push_str("=********");
        } else {
            out.push_str(&after_key[..before_eq + 1 + after_sep]);
            out.push_str(&value[..len]);
        }
        rest = &value[len..];
    }
}

/// The length in bytes of the value at the start of `s`, for both redaction
/// paths: a quoted value (`'…'` or `"…"`, in which a backslash escapes the next
/// character) with its quotes, or a bare one up to the first character that
/// `ends` accepts (a backslash escapes there too); all of `s` if it does not end.
fn value_len(s: &str, ends: impl Fn(char) -> bool) -> usize {
    let mut chars = s.char_indices().peekable();
    let quote = match chars.peek() {
        Some(&(_, q @ ('\'' | '"'))) => {
            chars.next();
            Some(q)
        }
        _ => None,
    };
    let mut escaped = false;
    for (i, c) in chars {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if quote == Some(c) {
            return i + c.len_utf8();
        } else if quote.is_none() && ends(c) {
            return i;
        }
    }
    s.len()
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn urls_lose_their_passwords() {
        assert_eq!(
            redact("postgresql://app:s3cret@h1:5432,h2:5433/db?sslmode=require&password=x"),
            "postgresql://app@h1:5432,h2:5433/db?sslmode=require&password=********"
        );
        assert_eq!(redact("postgres://:pw@h/db"), "postgres://@h/db");
        let plain =
            "postgresql://postgres@127.0.0.11:5432/postgres?target_session_attrs=read-write";
        assert_eq!(redact(plain), plain);
        // A password containing '@', '/' and '?' characters (percent-encoded or not).
        assert_eq!(redact("postgresql://u:p%40ss@h/db"), "postgresql://u@h/db");
        assert_eq!(
            redact("postgresql://u:p/s?s@s@h:1/db?x=1"),
            "postgresql://u@h:1/db?x=1"
        );
    }

    #[test]
    fn commands_lose_their_passwords() {
        use super::redact_text;
        assert_eq!(
            redact_text("psql \"postgresql://app:s3cret@db:5432/x\" -c 'select 1'"),
            "psql \"postgresql://app@db:5432/x\" -c 'select 1'"
        );
        assert_eq!(
            redact_text("PGPASSWORD=s3cret psql -h db; psql 'host=db password=p2 user=u'"),
            "PGPASSWORD=******** psql -h db; psql 'host=db password=******** user=u'"
        );
        assert_eq!(
            redact_text("--password 'a b' x"),
            "--password 'a b' x",
            "no '=': a flag, kept"
        );
        assert_eq!(redact_text("Password: 'a b' x"), "Password: ******** x");
        assert_eq!(redact_text("kubectl delete pod x"), "kubectl delete pod x");
    }

    /// Quoted values, with escapes, are redacted whole: nothing of them leaks
    /// after the mask (they did, before one scanner served both paths).
    #[test]
    fn quoted_and_escaped_values_are_redacted_whole() {
        use super::redact_text;
        for (text, want) in [
            ("PGPASSWORD=\"s3cret\" psql", "PGPASSWORD=******** psql"),
            ("PGPASSWORD='s3cret' psql", "PGPASSWORD=******** psql"),
            (
                "psql password='p\\'w x' -c 1",
                "psql password=******** -c 1",
            ),
            ("password=\"a \\\" b\" next", "password=******** next"),
            ("password=a\\ b next", "password=******** next"),
            ("PASSWORD: \"unterminated", "PASSWORD: ********"),
        ] {
            let got = redact_text(text);
            assert_eq!(got, want, "{text}");
            for secret in ["s3cret", "w x", "a \\\" b", "a\\ b", "unterminated"] {
                assert!(!got.contains(secret), "{secret} leaks from {text}: {got}");
            }
        }
        assert_eq!(
            redact("host=a password=\"p w\" user=b"),
            "host=a password=******** user=b"
        );
        assert_eq!(
            redact("host=a  sslmode = require"),
            "host=a  sslmode = require"
        );
        assert_eq!(redact("host=a flag user=b"), "host=a flag user=b");
    }

    #[test]
    fn key_values_lose_their_passwords_quoted_or_not() {
        assert_eq!(
            redact("host=a port=1 user=app password=s3cret dbname=x"),
            "host=a port=1 user=app password=******** dbname=x"
        );
        assert_eq!(
            redact("host=a password = 'p w\\'d' user=b"),
            "host=a password=******** user=b"
        );
        let r = redact("host=a PASSWORD='p w\\'d' user=b");
        assert_eq!(r, "host=a PASSWORD=******** user=b");
        assert!(!redact("password=x").contains('x'));
    }
}
