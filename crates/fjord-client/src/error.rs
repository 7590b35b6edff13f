//! What can go wrong talking to a cluster.

/// A client error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection failed or broke.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// No broker answered in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The broker sent something that does not decode, or does not support a needed API.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The settings contradict each other (Kafka's `ConfigException`).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The broker answered with a Kafka error code.
    #[error("{context}: {name} (error code {code})")]
    Kafka {
        /// Kafka's error code.
        code: i16,
        /// Its name, as Kafka spells it.
        name: String,
        /// What was asked.
        context: String,
    },
}

impl Error {
    /// The error for a non-zero Kafka error code in answer to `context`.
    pub fn kafka(code: i16, context: impl Into<String>) -> Error {
        let name = fjord_types::ErrorCode::from_code(code).name().to_owned();
        Error::Kafka { code, name, context: context.into() }
    }

    /// Whether trying again may succeed: Kafka's retriable codes, timeouts and broken
    /// connections.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Io { .. } | Error::Timeout(_) => true,
            Error::Protocol(_) | Error::Config(_) => false,
            Error::Kafka { code, .. } => fjord_types::ErrorCode::from_code(*code).is_retriable(),
        }
    }

    /// Kafka's error code, for a [`Error::Kafka`].
    pub fn code(&self) -> Option<i16> {
        match self {
            Error::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// A copy to report to several batches (an I/O error keeps its kind and message).
    pub fn clone_lossy(&self) -> Error {
        match self {
            Error::Io { context, source } => {
                Error::Io { context: context.clone(), source: std::io::Error::new(source.kind(), source.to_string()) }
            }
            Error::Timeout(what) => Error::Timeout(what.clone()),
            Error::Protocol(what) => Error::Protocol(what.clone()),
            Error::Config(what) => Error::Config(what.clone()),
            Error::Kafka { code, name, context } => {
                Error::Kafka { code: *code, name: name.clone(), context: context.clone() }
            }
        }
    }

    /// Fails with [`Error::kafka`] unless `code` is 0.
    pub fn check(code: i16, context: impl FnOnce() -> String) -> Result<(), Error> {
        if code == 0 { Ok(()) } else { Err(Error::kafka(code, context())) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_errors_carry_kafkas_names() {
        let e = Error::kafka(3, "describing t");
        assert_eq!(e.to_string(), "describing t: UNKNOWN_TOPIC_OR_PARTITION (error code 3)");
        assert!(Error::check(0, || unreachable!()).is_ok());
        assert!(matches!(Error::kafka(-42, "x"), Error::Kafka { code: -42, .. }));
    }
}
