//! Deadlines as `Option`s, where `None` means "never".

/// The earlier of two deadlines; `None` only when both are.
pub(crate) fn earliest<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Sleeps until `at`; returns at once when there is no deadline (guard the `select!` branch
/// with `at.is_some()`).
pub(crate) async fn sleep_until(at: Option<tokio::time::Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {
    use super::earliest;

    #[test]
    fn earliest_ignores_a_missing_deadline_and_takes_the_smaller_one() {
        assert_eq!(earliest::<u32>(None, None), None);
        assert_eq!(earliest(Some(3), None), Some(3));
        assert_eq!(earliest(None, Some(4)), Some(4));
        assert_eq!(earliest(Some(5), Some(2)), Some(2));
        assert_eq!(earliest(Some(2), Some(5)), Some(2));
    }
}
