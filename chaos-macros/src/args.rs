//! Parsing and validating `#[failover_test(...)]` arguments.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, Meta, Token};

/// The arguments the attribute accepts, for messages and suggestions.
pub const KNOWN: &[(&str, &str)] = &[
    ("max_rto", "a duration string such as \"10s\""),
    (
        "rpo",
        "a number of lost writes such as 0, or a time window such as \"2s\"",
    ),
    ("target", "\"local\" or \"env\""),
    ("timeout", "a duration string such as \"120s\""),
    ("writers", "a whole number of writers such as 2"),
    ("interval", "a duration string such as \"10ms\""),
    (
        "nodes",
        "a whole number of nodes between 2 and 9, such as 3",
    ),
    (
        "slo_on",
        "the name of a workload the body starts, such as \"orders\"",
    ),
    (
        "repeat",
        "a whole number of runs between 1 and 1000, such as 20",
    ),
    (
        "max_rto_p95",
        "a duration string such as \"10s\" (the RTO's 95th percentile over the runs)",
    ),
];

/// How much data may be lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpo {
    /// Lost acknowledged writes allowed.
    Writes(u64),
    /// Time window of lost writes allowed.
    Window(Duration),
}

/// Where the test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The embedded local cluster.
    Local,
    /// Chosen at run time from `CHAOS_TARGET`.
    Env,
}

/// Validated arguments; `None` means "the harness default".
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Args {
    pub max_rto: Option<Duration>,
    pub rpo: Option<Rpo>,
    pub target: Option<Target>,
    pub timeout: Option<Duration>,
    pub writers: Option<u32>,
    pub interval: Option<Duration>,
    pub nodes: Option<u32>,
    pub slo_on: Option<String>,
    pub repeat: Option<u32>,
    pub max_rto_p95: Option<Duration>,
}

/// Parses `args`, collecting every error (each pointing at its token).
pub fn parse(args: TokenStream) -> Result<Args, syn::Error> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)?;
    let mut out = Args::default();
    let mut errors: Vec<syn::Error> = Vec::new();
    let mut seen: Vec<(String, Span)> = Vec::new();
    for meta in metas {
        let Some(ident) = meta.path().get_ident().map(ToString::to_string) else {
            errors.push(syn::Error::new(
                meta.path().span(),
                format!("expected an argument name, one of {}", names()),
            ));
            continue;
        };
        let span = meta.path().span();
        let Some((_, expected)) = KNOWN.iter().find(|(n, _)| *n == ident) else {
            let hint = match suggest(&ident) {
                Some(s) => format!("; did you mean `{s}`?"),
                None => String::new(),
            };
            errors.push(syn::Error::new(
                span,
                format!(
                    "unknown argument `{ident}`: expected one of {}{hint}",
                    names()
                ),
            ));
            continue;
        };
        if seen.iter().any(|(n, _)| *n == ident) {
            errors.push(syn::Error::new(
                span,
                format!("duplicate argument `{ident}`: give it once"),
            ));
            continue;
        }
        seen.push((ident.clone(), span));
        let value = match &meta {
            Meta::NameValue(nv) => &nv.value,
            _ => {
                errors.push(syn::Error::new(
                    meta.span(),
                    format!("`{ident}` needs a value: write `{ident} = ...` with {expected}"),
                ));
                continue;
            }
        };
        if let Err(e) = set(&mut out, &ident, value, expected) {
            errors.push(e);
        }
    }
    if let (Some(p95), Some(max)) = (out.max_rto_p95, out.max_rto)
        && p95 > max
        && let Some((_, span)) = seen.iter().find(|(n, _)| n == "max_rto_p95")
    {
        errors.push(syn::Error::new(
            *span,
            format!(
                "`max_rto_p95` ({}) is above `max_rto` ({}), which caps every run: lower \
                 `max_rto_p95` or raise `max_rto`",
                humantime::format_duration(p95),
                humantime::format_duration(max)
            ),
        ));
    }
    match errors.into_iter().reduce(|mut a, b| {
        a.combine(b);
        a
    }) {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

fn names() -> String {
    KNOWN
        .iter()
        .map(|(n, _)| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn set(out: &mut Args, name: &str, value: &Expr, expected: &str) -> Result<(), syn::Error> {
    let wrong = || {
        syn::Error::new(
            value.span(),
            format!(
                "`{name}` expects {expected}, found `{}`",
                quote::quote!(#value)
            ),
        )
    };
    let lit = match value {
        Expr::Lit(ExprLit { lit, .. }) => lit,
        _ => return Err(wrong()),
    };
    match name {
        "max_rto" | "timeout" | "interval" | "max_rto_p95" => {
            let d = duration(lit, name, expected)?;
            if d.is_zero() {
                return Err(syn::Error::new(
                    lit.span(),
                    format!("`{name}` must be above zero"),
                ));
            }
            match name {
                "max_rto" => out.max_rto = Some(d),
                "timeout" => out.timeout = Some(d),
                "max_rto_p95" => out.max_rto_p95 = Some(d),
                _ => out.interval = Some(d),
            }
        }
        "rpo" => {
            out.rpo = Some(match lit {
                Lit::Int(i) => Rpo::Writes(i.base10_parse().map_err(|_| wrong())?),
                Lit::Str(_) => Rpo::Window(duration(lit, name, expected)?),
                _ => return Err(wrong()),
            })
        }
        "target" => match lit {
            Lit::Str(s) if s.value() == "local" => out.target = Some(Target::Local),
            Lit::Str(s) if s.value() == "env" => out.target = Some(Target::Env),
            Lit::Str(s) => {
                return Err(syn::Error::new(
                    s.span(),
                    format!(
                        "unknown target {:?}: expected \"local\" (the embedded cluster) or \"env\" \
                         (chosen at run time from CHAOS_TARGET)",
                        s.value()
                    ),
                ));
            }
            _ => return Err(wrong()),
        },
        "slo_on" => match lit {
            Lit::Str(s) if !s.value().trim().is_empty() => out.slo_on = Some(s.value()),
            Lit::Str(s) => {
                return Err(syn::Error::new(
                    s.span(),
                    "`slo_on` needs the name of a workload, such as \"orders\"",
                ));
            }
            _ => return Err(wrong()),
        },
        "repeat" => {
            let Lit::Int(i) = lit else {
                return Err(wrong());
            };
            let n: u32 = i.base10_parse().map_err(|_| wrong())?;
            if !(1..=1000).contains(&n) {
                return Err(syn::Error::new(
                    i.span(),
                    format!("`repeat` must be between 1 and 1000, found {n}"),
                ));
            }
            out.repeat = Some(n);
        }
        "writers" | "nodes" => {
            let Lit::Int(i) = lit else {
                return Err(wrong());
            };
            let n: u32 = i.base10_parse().map_err(|_| wrong())?;
            if name == "nodes" && !(2..=9).contains(&n) {
                return Err(syn::Error::new(
                    i.span(),
                    format!("`nodes` must be between 2 and 9, found {n}"),
                ));
            }
            if name == "writers" && n == 0 {
                return Err(syn::Error::new(i.span(), "`writers` must be at least 1"));
            }
            if name == "nodes" {
                out.nodes = Some(n);
            } else {
                out.writers = Some(n);
            }
        }
        _ => return Err(wrong()),
    }
    Ok(())
}

fn duration(lit: &Lit, name: &str, expected: &str) -> Result<Duration, syn::Error> {
    match lit {
        Lit::Str(s) => humantime::parse_duration(s.value().trim()).map_err(|e| {
            syn::Error::new(
                s.span(),
                format!(
                    "`{name}` expects {expected}: {:?} is not a duration ({e})",
                    s.value()
                ),
            )
        }),
        Lit::Int(i) => Err(syn::Error::new(
            i.span(),
            format!(
                "`{name}` expects {expected}; write the unit, e.g. \"{}s\"",
                i.base10_digits()
            ),
        )),
        other => Err(syn::Error::new(
            other.span(),
            format!("`{name}` expects {expected}"),
        )),
    }
}

/// The known argument closest to `name`, if it is close enough to be a typo.
pub fn suggest(name: &str) -> Option<&'static str> {
    KNOWN
        .iter()
        .map(|(n, _)| (*n, levenshtein(name, n)))
        .filter(|(n, d)| *d <= 2.max(n.len() / 3))
        .min_by_key(|(_, d)| *d)
        .map(|(n, _)| n)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn parses_every_argument() {
        let a = parse(quote!(
            max_rto = "10s",
            rpo = 0,
            target = "env",
            timeout = "2m",
            writers = 3,
            interval = "5ms",
            nodes = 5,
            repeat = 20,
            max_rto_p95 = "8s"
        ))
        .unwrap();
        assert_eq!(a.repeat, Some(20));
        assert_eq!(a.max_rto_p95, Some(Duration::from_secs(8)));
        assert_eq!(a.max_rto, Some(Duration::from_secs(10)));
        assert_eq!(a.rpo, Some(Rpo::Writes(0)));
        assert_eq!(a.target, Some(Target::Env));
        assert_eq!(a.timeout, Some(Duration::from_secs(120)));
        assert_eq!(a.writers, Some(3));
        assert_eq!(a.interval, Some(Duration::from_millis(5)));
        assert_eq!(a.nodes, Some(5));
        assert_eq!(parse(quote!()).unwrap(), Args::default());
        assert_eq!(
            parse(quote!(rpo = "2s")).unwrap().rpo,
            Some(Rpo::Window(Duration::from_secs(2)))
        );
    }

    fn error(tokens: TokenStream) -> String {
        parse(tokens)
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(" | ")
    }

    #[test]
    fn explains_bad_arguments() {
        assert!(error(quote!(max_rtoo = "1s")).contains("did you mean `max_rto`?"));
        assert!(error(quote!(flavor = "x")).contains("unknown argument `flavor`"));
        assert!(error(quote!(rpo = 0, rpo = 1)).contains("duplicate argument `rpo`"));
        assert!(error(quote!(max_rto)).contains("`max_rto` needs a value"));
        assert!(error(quote!(max_rto = 10)).contains("write the unit, e.g. \"10s\""));
        assert!(error(quote!(max_rto = "ten")).contains("is not a duration"));
        assert!(error(quote!(nodes = 1)).contains("between 2 and 9"));
        assert!(error(quote!(target = "k8s")).contains("unknown target \"k8s\""));
        assert!(error(quote!(writers = "2")).contains("`writers` expects a whole number"));
        assert!(error(quote!(repeat = 0)).contains("between 1 and 1000"));
        assert!(error(quote!(repeat = "5")).contains("`repeat` expects a whole number"));
        assert!(
            error(quote!(max_rto = "5s", max_rto_p95 = "10s"))
                .contains("`max_rto_p95` (10s) is above `max_rto` (5s)")
        );
    }

    #[test]
    fn collects_all_errors() {
        let all = parse(quote!(bogus = 1, max_rto = 5, nodes = 0)).unwrap_err();
        assert_eq!(all.into_iter().count(), 3);
    }

    #[test]
    fn suggests_only_close_names() {
        assert_eq!(suggest("timout"), Some("timeout"));
        assert_eq!(suggest("writer"), Some("writers"));
        assert_eq!(suggest("zzzzzz"), None);
    }
}
