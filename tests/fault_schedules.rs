//! Property-based fault schedules against the local cluster: a few generated
//! schedules (which fault, when, for how long), each of which must lose no
//! acknowledged write. A failure prints the schedule and the seed to replay it
//! (`CHAOS_SEED=0x… cargo test --test fault_schedules`).

use std::time::Duration;

use chaos_core::harness::{TestSpec, run};
use chaos_core::schedule::{check, schedules};

#[test]
fn generated_fault_schedules_lose_no_acknowledged_write() {
    check(3, schedules(2), |schedule| {
        let steps = schedule.clone();
        let spec = TestSpec::new("fault_schedules::generated")
            .max_rto(Duration::from_secs(60))
            .timeout(Duration::from_secs(300));
        let report = run(spec, move |ctx| {
            Box::pin(async move { ctx.run_schedule(&steps).await })
        })
        .map_err(|failure| failure.to_string())?;
        eprintln!("{report}");
        if report.writes.lost == 0 && report.split_brain_writes == 0 {
            Ok(())
        } else {
            Err(format!("data lost:\n{report}"))
        }
    });
}
