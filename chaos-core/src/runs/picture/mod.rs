//! The pictures of sets of runs and of comparisons: pages above the single
//! report's (they draw each run with [`report_svg_compact`](crate::report::picture::report_svg_compact)
//! and share its palette and axes), so that reports know nothing of runs.

mod comparison;
mod set;

pub use comparison::{comparison_html, comparison_svg};
pub use set::{set_html, set_rto_svg, write_set_html};

#[cfg(test)]
mod tests;
