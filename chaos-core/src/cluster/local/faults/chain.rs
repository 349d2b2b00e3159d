//! What the network faults' guards share: an iptables chain that holds a
//! node's rules, lifted once — on heal, or when the guard is dropped.

use std::time::Duration;

use crate::Result;
use crate::cluster::local::LocalCluster;
use crate::fault::Healed;
use crate::timeline::{Healing, Timestamp};

/// The chain of rules a network fault installed on `victim`.
#[derive(Debug)]
pub(super) struct ChainRules {
    cluster: LocalCluster,
    victim: String,
    chain: Option<String>,
    /// What lifting restores, for the log, e.g. `the links`.
    what: &'static str,
}

impl ChainRules {
    /// The rules in `chain`, on `victim`.
    pub(super) fn new(
        cluster: &LocalCluster,
        victim: String,
        chain: String,
        what: &'static str,
    ) -> Self {
        ChainRules {
            cluster: cluster.clone(),
            victim,
            chain: Some(chain),
            what,
        }
    }

    /// The chain's name, until lifted.
    pub(super) fn chain(&self) -> Option<&str> {
        self.chain.as_deref()
    }

    fn lift(&mut self) -> Result<()> {
        match (self.chain.take(), self.cluster.net()) {
            (Some(chain), Ok(net)) => net.lift(&chain),
            _ => Ok(()),
        }
    }

    /// Removes the rules, then waits (up to 60 s) until the node serves again
    /// as Patroni reports it, with a primary in place; `event` says what was
    /// healed.
    pub(super) async fn heal(&mut self, event: Healing) -> Result<Healed> {
        self.lift()?;
        self.cluster
            .wait_serving(&self.victim, self.what, Duration::from_secs(60))
            .await?;
        Ok(Healed {
            event,
            at: Timestamp::now(),
            detail: Some(self.victim.clone()),
        })
    }
}

impl Drop for ChainRules {
    fn drop(&mut self) {
        if let Err(e) = self.lift() {
            tracing::error!(error = %e, what = self.what, "fault guard dropped: could not lift its rules");
        }
    }
}
