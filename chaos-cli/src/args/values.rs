//! The value parsers of the command line's flags: durations, the RPO,
//! `--set NAME=VALUE`, and `--fault` (its possible values and their help
//! from chaos-core's fault catalogue).

use std::fmt;
use std::time::Duration;

use chaos_core::fault::{CATALOGUE, FaultSpec};
use chaos_core::runs::Setting;
use chaos_core::slo::{Rpo, parse_duration};
use clap::builder::{PossibleValue, TypedValueParser};
use clap::error::ErrorKind;

/// A duration given on the command line, shown in help as humantime writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// `--set NAME=VALUE`.
pub(super) fn parse_setting(s: &str) -> Result<Setting, String> {
    s.parse::<Setting>().map_err(|e| match e {
        chaos_core::Error::Config { expected, .. } => format!("expected {expected}"),
        other => other.to_string(),
    })
}

/// A value parser of durations for `flag`, with humantime's syntax.
pub(super) fn duration(
    flag: &'static str,
) -> impl Fn(&str) -> Result<Dur, String> + Clone + Send + Sync + 'static {
    move |s| {
        parse_duration(flag, s).map(Dur).map_err(|e| match e {
            chaos_core::Error::Config { expected, .. } => format!("expected {expected}"),
            other => other.to_string(),
        })
    }
}

/// Like [`duration`], refusing zero.
pub(super) fn positive_duration(
    flag: &'static str,
) -> impl Fn(&str) -> Result<Dur, String> + Clone + Send + Sync + 'static {
    let parse = duration(flag);
    move |s| match parse(s)? {
        Dur(d) if d.is_zero() => Err("expected a duration above zero, such as 10ms".into()),
        d => Ok(d),
    }
}

/// `--rpo`: a whole number of writes, or a time window.
pub(super) fn parse_rpo(s: &str) -> Result<Rpo, String> {
    let s = s.trim();
    if s.starts_with('-') {
        return Err(format!(
            "{s} is negative: expected a whole number of acknowledged writes that may be lost \
             (0: none), or a time window such as 2s"
        ));
    }
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Rpo::MaxLostWrites(n));
    }
    parse_duration("--rpo", s)
        .map(Rpo::MaxLostWindow)
        .map_err(|_| {
            "expected a whole number of acknowledged writes that may be lost (0: none), or a \
             time window such as 2s"
                .into()
        })
}

/// `--fault`: the built-in faults by the names chaos-core gives them, some
/// with a value (`NAME=VALUE`, parsed by [`FaultSpec`]).
#[derive(Clone, Copy)]
pub(super) struct FaultParser;

impl TypedValueParser for FaultParser {
    type Value = FaultSpec;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<FaultSpec, clap::Error> {
        let text = value.to_str().ok_or_else(|| {
            clap::Error::raw(ErrorKind::InvalidUtf8, "--fault must be UTF-8\n").with_cmd(cmd)
        })?;
        FaultSpec::parse(text).map_err(|e| {
            let flag = arg.map_or("--fault".to_string(), |a| a.to_string());
            clap::Error::raw(
                ErrorKind::InvalidValue,
                format!("invalid value '{text}' for '{flag}': {e}\n"),
            )
            .with_cmd(cmd)
        })
    }

    /// Every fault of chaos-core's catalogue, with its value's placeholder
    /// (`primary-latency=DELAY`) and its line of help.
    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        // clap keeps `&'static str`s: the names are written out once.
        static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        let names = NAMES.get_or_init(|| {
            CATALOGUE
                .iter()
                .map(|e| match e.arg {
                    Some(arg) => format!("{}={}", e.name, arg.placeholder),
                    None => e.name.to_string(),
                })
                .collect()
        });
        Some(Box::new(CATALOGUE.iter().zip(names).map(|(e, name)| {
            PossibleValue::new(name.as_str()).help(e.help)
        })))
    }
}
