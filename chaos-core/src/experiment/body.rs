//! What a test body returns, and how it ended: [`TestResult`],
//! [`BodyError`], [`BodyOutcome`].

use std::any::Any;
use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use crate::panics::panic_message;

/// What a body may return: `()` or `Result<(), E>` with `E: Debug`.
#[diagnostic::on_unimplemented(
    message = "a #[failover_test] function must return `()` or `Result<(), E>` with `E: Debug`, not `{Self}`",
    label = "this return type is not supported"
)]
pub trait TestResult {
    /// `Err` with the body's error when the body failed.
    ///
    /// # Errors
    /// The body's error as a [`BodyError`].
    fn into_result(self) -> Result<(), BodyError>;
}

impl TestResult for () {
    fn into_result(self) -> Result<(), BodyError> {
        Ok(())
    }
}

impl<E: fmt::Debug + 'static> TestResult for Result<(), E> {
    fn into_result(self) -> Result<(), BodyError> {
        self.map_err(BodyError::from_debug)
    }
}

/// The error a test body returned: its description (the error's `Debug`,
/// as the report writes it) and, when the body returned a [`BodyError`] or
/// this crate's [`Error`](crate::Error), that error itself, so that a
/// front-end can tell what failed without a side channel.
pub struct BodyError {
    text: String,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl BodyError {
    /// A body error for `error`, described by its `Display`.
    pub fn new(error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        let error = error.into();
        BodyError {
            text: error.to_string(),
            source: Some(error),
        }
    }

    /// A body error for `error`, described as `what: error`.
    pub fn context(what: &str, error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        let error = error.into();
        BodyError {
            text: format!("{what}: {error}"),
            source: Some(error),
        }
    }

    /// A body error that is only a message.
    pub fn msg(text: impl Into<String>) -> Self {
        BodyError {
            text: text.into(),
            source: None,
        }
    }

    /// Whatever a body returned as its error: a [`BodyError`] stays as it is,
    /// this crate's [`Error`](crate::Error) is kept as the source; anything
    /// else is kept as its `Debug` text.
    fn from_debug<E: fmt::Debug + 'static>(error: E) -> Self {
        let text = format!("{error:?}");
        let any: Box<dyn Any> = Box::new(error);
        let any = match any.downcast::<BodyError>() {
            Ok(b) => return *b,
            Err(any) => any,
        };
        match any.downcast::<crate::Error>() {
            Ok(e) => BodyError {
                text,
                source: Some(e),
            },
            Err(_) => BodyError::msg(text),
        }
    }

    /// The error the body returned, when it is known as an error.
    pub fn error(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        self.source.as_deref()
    }

    /// The body's error as `E`, if it is one.
    pub fn downcast_ref<E: StdError + 'static>(&self) -> Option<&E> {
        self.source.as_deref()?.downcast_ref()
    }

    /// The body's error as `E`, if it is one; else `self` back.
    ///
    /// # Errors
    /// `self` when the body's error is not an `E`.
    pub fn downcast<E: StdError + 'static>(self) -> Result<E, Self> {
        match self.source {
            Some(s) if s.is::<E>() => match s.downcast::<E>() {
                Ok(e) => Ok(*e),
                Err(s) => Err(BodyError {
                    text: self.text,
                    source: Some(s),
                }),
            },
            source => Err(BodyError {
                text: self.text,
                source,
            }),
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Prints the text as is, so that a body's `Result<(), BodyError>` reads
/// well where `Debug` is used (`#[failover_test]`'s messages).
impl fmt::Debug for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl StdError for BodyError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// How the body ended.
pub enum BodyOutcome {
    /// It returned `()` or `Ok(())`.
    Passed,
    /// It returned `Err`.
    Failed(BodyError),
    /// It panicked; the payload is kept so that a test can re-raise it.
    Panicked(Box<dyn Any + Send>),
    /// It (or the recovery after it) outlived the deadline.
    TimedOut(Duration),
}

impl fmt::Debug for BodyOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyOutcome::Passed => f.write_str("Passed"),
            BodyOutcome::Failed(e) => write!(f, "Failed({e})"),
            BodyOutcome::Panicked(p) => write!(f, "Panicked({})", panic_message(p.as_ref())),
            BodyOutcome::TimedOut(d) => write!(f, "TimedOut({d:?})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_error_keeps_what_the_body_returned() {
        // Anything Debug: its Debug text.
        let e = Err::<(), _>("no luck").into_result().unwrap_err();
        assert_eq!(e.to_string(), "\"no luck\"");
        assert!(e.error().is_none());
        // This crate's error: its Debug text, and the error itself.
        let timeout = crate::Error::Timeout {
            what: "x".into(),
            waited: Duration::ZERO,
            logs: String::new(),
        };
        let e = Err::<(), _>(timeout).into_result().unwrap_err();
        assert!(e.to_string().starts_with("Timeout"), "{e}");
        assert!(matches!(
            e.downcast::<crate::Error>(),
            Ok(crate::Error::Timeout { .. })
        ));
        // A BodyError: as it is.
        let io = std::io::Error::other("disk on fire");
        let e = Err::<(), _>(BodyError::context("healing the fault", io))
            .into_result()
            .unwrap_err();
        assert_eq!(e.to_string(), "healing the fault: disk on fire");
        assert!(e.downcast_ref::<std::io::Error>().is_some());
        assert!(e.downcast::<crate::Error>().is_err());
    }
}
