//! Built-in faults chosen by name at run time: `kill-primary`,
//! `throttle-primary-disk=1MiB/s`, … — what the command line's `--fault`
//! takes. The front-ends parse a [`FaultSpec`] and inject it; they need not
//! know the faults one by one.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::{
    ArgKind, Bandwidth, Builtin, DeletePrimary, FaultKind, FreezePrimary, FreezeReplicas, Latency,
    PacketLoss, PartitionNetwork, PauseNode, StopDcs, Switchover, ThrottleDisk,
};
use crate::{Error, Result};

/// A built-in fault and its argument, parsed from `NAME` or `NAME=VALUE`.
/// The [`CATALOGUE`](super::CATALOGUE) says which faults take a value and
/// what it looks like:
///
/// | name | value |
/// |---|---|
/// | `throttle-primary-disk` | a rate: `1MiB/s`, `500KB/s` (bytes per second, writes) or `100iops` (write operations) |
/// | `primary-packet-loss` | a percentage of packets dropped: `30%` |
/// | `primary-bandwidth` | a rate each way: `1MiB/s` |
/// | `primary-latency` | a delay: `100ms` |
///
/// The other faults take no value. On an external target the value reaches
/// the fault's command as `CHAOS_FAULT_ARG`.
///
/// ```
/// use chaos_core::fault::{FaultKind, FaultSpec};
///
/// let spec: FaultSpec = "throttle-primary-disk=1MiB/s".parse()?;
/// assert_eq!(spec.kind(), FaultKind::ThrottlePrimaryDisk);
/// assert_eq!(spec.to_string(), "throttle-primary-disk=1MiB/s");
/// assert!("primary-packet-loss".parse::<FaultSpec>().is_err()); // needs a value
/// # Ok::<(), chaos_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    kind: FaultKind,
    arg: Option<String>,
    value: Value,
}

/// The parsed argument.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value {
    None,
    BytesPerSec(u64),
    Iops(u64),
    Percent(f64),
    Delay(Duration),
}

impl FaultSpec {
    /// Parses `NAME` or `NAME=VALUE`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the faults there are, or saying what value
    /// the fault takes.
    pub fn parse(text: &str) -> Result<Self> {
        let (name, arg) = match text.split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (text.trim(), None),
        };
        let kind = FaultKind::parse(name)?;
        let value = match (takes(kind), arg) {
            (None, None) => Value::None,
            (None, Some(a)) => {
                return Err(Error::Config {
                    field: "fault",
                    expected: "no value for this fault (write just its name)",
                    found: format!("{name}={a}"),
                });
            }
            (Some((_, expected)), None) => {
                return Err(Error::Config {
                    field: "fault",
                    expected,
                    found: name.to_string(),
                });
            }
            (Some((parse, expected)), Some(a)) => parse(a).ok_or_else(|| Error::Config {
                field: "fault",
                expected,
                found: format!("{name}={a}"),
            })?,
        };
        Ok(FaultSpec {
            kind,
            arg: arg.map(str::to_string),
            value,
        })
    }

    /// The built-in fault.
    pub fn kind(&self) -> FaultKind {
        self.kind
    }

    /// The value as written, if the fault takes one.
    pub fn arg(&self) -> Option<&str> {
        self.arg.as_deref()
    }
}

impl From<FaultKind> for FaultSpec {
    /// A fault without a value. Faults that need one (see [`FaultSpec`]) get
    /// the catalogue's moderate default: 1 MiB/s, 20 %, 100 ms.
    fn from(kind: FaultKind) -> Self {
        let Some(arg) = kind.entry().arg else {
            return FaultSpec {
                kind,
                arg: None,
                value: Value::None,
            };
        };
        FaultSpec {
            kind,
            arg: Some(arg.default.to_string()),
            // The tests check that every default parses.
            value: parser(arg.kind)(arg.default).unwrap_or(Value::None),
        }
    }
}

type Parser = fn(&str) -> Option<Value>;

/// How a fault's value is parsed (its parser), and what it should look like.
fn takes(kind: FaultKind) -> Option<(Parser, &'static str)> {
    kind.entry().arg.map(|a| (parser(a.kind), a.expected))
}

/// The parser of a kind of value.
fn parser(kind: ArgKind) -> Parser {
    match kind {
        ArgKind::Rate => parse_rate,
        ArgKind::RateOrIops => |a| parse_rate(a).or_else(|| parse_iops(a)),
        ArgKind::Percent => parse_percent,
        ArgKind::Delay => |a| {
            humantime::parse_duration(a)
                .ok()
                .filter(|d| !d.is_zero())
                .map(Value::Delay)
        },
    }
}

/// `1MiB/s`, `500KB/s`, `2048B/s`, `1.5MB/s` (`/s` may be left out): bytes
/// per second, more than 0.
fn parse_rate(text: &str) -> Option<Value> {
    let t = text.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let scale: f64 = match unit.trim() {
        "B" | "" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = (n * scale).round();
    (bytes >= 1.0 && bytes < u64::MAX as f64).then_some(Value::BytesPerSec(bytes as u64))
}

/// `100iops`: operations per second, more than 0.
fn parse_iops(text: &str) -> Option<Value> {
    let n: u64 = text.trim().strip_suffix("iops")?.trim().parse().ok()?;
    (n > 0).then_some(Value::Iops(n))
}

/// `30%` or `30`: more than 0, at most 100.
fn parse_percent(text: &str) -> Option<Value> {
    let t = text.trim();
    let p: f64 = t.strip_suffix('%').unwrap_or(t).trim().parse().ok()?;
    (p > 0.0 && p <= 100.0).then_some(Value::Percent(p))
}

impl FromStr for FaultSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        FaultSpec::parse(s)
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.arg {
            Some(a) => write!(f, "{}={a}", self.kind.name()),
            None => f.write_str(self.kind.name()),
        }
    }
}

impl FaultSpec {
    /// The built-in fault this names, with its value.
    ///
    /// # Errors
    /// [`Error::Config`] when the value is not of the fault's kind (a spec
    /// parsed by [`parse`](Self::parse) always is).
    pub fn builtin(&self) -> Result<Builtin> {
        Ok(match (self.kind, self.value) {
            (FaultKind::KillPrimary, _) => DeletePrimary::kill().into(),
            (FaultKind::StopPrimary, _) => DeletePrimary::graceful().into(),
            (FaultKind::FreezePrimary, _) => FreezePrimary::new().into(),
            (FaultKind::FreezeReplicas, _) => FreezeReplicas::new().into(),
            (FaultKind::PauseNode, _) => PauseNode::primary().into(),
            (FaultKind::StopDcs, _) => StopDcs::new().into(),
            (FaultKind::Switchover, _) => Switchover::to_sync_standby().into(),
            (FaultKind::IsolatePrimary, _) => PartitionNetwork::isolate_primary().into(),
            (FaultKind::PartitionPrimaryFromReplicas, _) => {
                PartitionNetwork::primary_from_replicas().into()
            }
            (FaultKind::ThrottlePrimaryDisk, Value::Iops(n)) => {
                ThrottleDisk::primary().write_iops(n).into()
            }
            (FaultKind::ThrottlePrimaryDisk, Value::BytesPerSec(n)) => {
                ThrottleDisk::primary().write_bps(n).into()
            }
            (FaultKind::PrimaryPacketLoss, Value::Percent(p)) => PacketLoss::primary(p).into(),
            (FaultKind::PrimaryBandwidth, Value::BytesPerSec(n)) => Bandwidth::primary(n).into(),
            (FaultKind::PrimaryLatency, Value::Delay(d)) => Latency::primary(d).into(),
            (kind, _) => {
                return Err(Error::Config {
                    field: "fault",
                    expected: "a value of the fault's kind",
                    found: self.arg.clone().unwrap_or_else(|| kind.name().to_string()),
                });
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_parses_by_name_or_with_its_value() {
        for kind in FaultKind::ALL {
            let spec = match takes(kind) {
                None => FaultSpec::parse(kind.name()).expect("no value needed"),
                Some(_) => {
                    FaultSpec::parse(kind.name()).expect_err("a value is needed");
                    FaultSpec::from(kind)
                }
            };
            assert_eq!(spec.kind(), kind);
            let again: FaultSpec = spec.to_string().parse().expect("round trip");
            assert_eq!(again, spec);
        }
    }

    #[test]
    fn the_catalogues_defaults_parse() {
        for e in super::super::CATALOGUE {
            if let Some(arg) = e.arg {
                let spec = FaultSpec::from(e.kind);
                assert_ne!(spec.value, Value::None, "{}", e.name);
                let again = FaultSpec::parse(&format!("{}={}", e.name, arg.default));
                assert_eq!(again.ok(), Some(spec));
            }
        }
    }

    #[test]
    fn values_are_read_with_their_units() {
        let v = |s: &str| FaultSpec::parse(s).map(|f| f.value);
        assert_eq!(
            v("throttle-primary-disk=1MiB/s").unwrap(),
            Value::BytesPerSec(1 << 20)
        );
        assert_eq!(
            v("throttle-primary-disk=500KB/s").unwrap(),
            Value::BytesPerSec(500_000)
        );
        assert_eq!(
            v("throttle-primary-disk=100iops").unwrap(),
            Value::Iops(100)
        );
        assert_eq!(
            v("primary-bandwidth=1.5MB").unwrap(),
            Value::BytesPerSec(1_500_000)
        );
        assert_eq!(v("primary-packet-loss=30%").unwrap(), Value::Percent(30.0));
        assert_eq!(
            v("primary-latency=100ms").unwrap(),
            Value::Delay(Duration::from_millis(100))
        );
    }

    #[test]
    fn bad_values_say_what_was_expected() {
        for bad in [
            "throttle-primary-disk=fast",
            "throttle-primary-disk=0B/s",
            "primary-packet-loss=150%",
            "primary-packet-loss=0",
            "primary-bandwidth=1Mbps",
            "primary-latency=0s",
            "kill-primary=now",
        ] {
            let err = FaultSpec::parse(bad).expect_err(bad);
            let Error::Config {
                expected, found, ..
            } = &err
            else {
                panic!("{bad}: {err}");
            };
            assert!(!expected.is_empty() && found.contains('='), "{bad}: {err}");
        }
        let err = FaultSpec::parse("bogus").expect_err("unknown");
        assert!(err.to_string().contains("kill-primary"), "{err}");
    }
}
