//! Running `iptables` and `tc`: a failure is an [`Error::Command`] with the
//! command line, its exit status and what it wrote to stderr.

use std::process::{Command, Stdio};

use crate::{Error, Result};

pub(super) fn iptables(args: &[&str]) -> Result<()> {
    let out = Command::new("iptables")
        .arg("-w")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("running iptables", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            command: format!("iptables -w {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

pub(super) fn tc(args: &[String]) -> Result<()> {
    let out = Command::new("tc")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("running tc (Debian package `iproute2`)", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            command: format!("tc {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}
