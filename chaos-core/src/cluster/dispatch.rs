//! The faults as any target does them: `Fault<dyn Target>` for every
//! built-in fault and for [`FaultSpec`] (handed to
//! [`Target::inject_builtin`], which does the fault the target's own way or
//! says [`Error::Unsupported`](crate::Error::Unsupported)), and [`Shell`] on
//! every target.
//!
//! They live on the seam's side, not in [`crate::fault`]: `fault` says what a
//! fault is and knows no target; the seam knows both, so the modules depend
//! one way (`cluster` → `fault`).

use std::future::Future;
use std::time::{Duration, Instant};

use super::Target;
use crate::Result;
use crate::fault::shell::run_command;
use crate::fault::{
    AnyGuard, Bandwidth, Builtin, DeletePrimary, Fault, FaultInfo, FaultSpec, FreezePrimary,
    FreezeReplicas, Latency, PacketLoss, PartitionNetwork, PauseNode, Shell, ShellGuard, StopDcs,
    Switchover, ThrottleDisk, with_builtins,
};
use crate::timeline::Timestamp;

/// `Fault<dyn Target>` for each built-in fault.
macro_rules! on_any_target {
    ($($variant:ident),* $(,)?) => {
        $(
            /// On any target: the target does it its own way
            /// ([`Target::inject_builtin`]), or says it cannot.
            impl Fault<dyn Target> for $variant {
                type Guard = AnyGuard;

                fn inject(
                    self,
                    target: &dyn Target,
                ) -> impl Future<Output = Result<AnyGuard>> + Send {
                    target.inject_builtin(Builtin::$variant(self), None)
                }
            }
        )*
    };
}

with_builtins!(on_any_target);

/// On any target: the target does the fault its own way
/// ([`Target::inject_builtin`]; an external target's command is told the
/// value as `CHAOS_FAULT_ARG`), or says it cannot.
impl Fault<dyn Target> for FaultSpec {
    type Guard = AnyGuard;

    async fn inject(self, target: &dyn Target) -> Result<AnyGuard> {
        let fault = self.builtin()?;
        let arg = self.arg().map(str::to_string);
        target.inject_builtin(fault, arg).await
    }
}

impl<T: Target + ?Sized> Fault<T> for Shell {
    type Guard = ShellGuard;

    async fn inject(self, target: &T) -> Result<ShellGuard> {
        let primary = match tokio::time::timeout(Duration::from_secs(5), target.topology()).await {
            Ok(Ok(t)) => t.primary_name().map(str::to_string),
            _ => None,
        };
        let mut env = self.env;
        env.push(("CHAOS_TARGET_KIND", target.kind().to_string()));
        if let Some(p) = &primary {
            env.push(("CHAOS_PRIMARY", p.clone()));
        }
        let (injected_at, wall) = (Instant::now(), Timestamp::now());
        run_command(&self.inject, &env, self.timeout).await?;
        let shown = crate::dsn::redact_text(&self.inject);
        tracing::info!(command = %shown, ran = ?injected_at.elapsed(), "shell fault injected");
        Ok(ShellGuard {
            info: FaultInfo {
                kind: self.name,
                mode: shown,
                victim: primary,
                injected_at: wall,
            },
            injected_at,
            heal: self.heal,
            env,
            timeout: self.timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_external_fault_command_is_told_the_value() {
        use crate::cluster::external::ExternalCluster;
        use crate::fault::{FaultGuard, FaultKind};
        let out = std::env::temp_dir().join(format!("chaos-spec-arg-{}", std::process::id()));
        let c = ExternalCluster::builder("postgresql://127.0.0.1:1/db?connect_timeout=1")
            .fault_command(
                FaultKind::PrimaryPacketLoss,
                format!("printf %s \"$CHAOS_FAULT_ARG\" > '{}'", out.display()),
                None,
            )
            .build()
            .expect("valid");
        let target: &dyn Target = &c;
        let spec = FaultSpec::parse("primary-packet-loss=30%").unwrap();
        let guard = spec.inject(target).await.expect("the command ran");
        assert_eq!(guard.info().kind, "primary-packet-loss");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "30%");
        let _ = std::fs::remove_file(&out);
    }
}
