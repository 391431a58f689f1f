//! One page of a list (docs/contracts.md#http-api): the items of the wanted states that come after
//! a cursor in creation order, at most a limit of them, and whether more follow. Lists are served
//! from here so that a request's work is one pass over what the caller may see, whatever the list's
//! size, and only the page is copied.

/// What a list request asks for: the states to keep (none: every state), the id to
/// continue after, and how many at most.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    pub states: Vec<&'static str>,
    pub after: Option<String>,
    pub limit: usize,
}

impl Listing {
    /// Every item, for callers inside the coordinator.
    pub fn everything() -> Self {
        Self { states: Vec::new(), after: None, limit: usize::MAX }
    }

    /// Whether an item in `state` is wanted.
    pub fn wants(&self, state: &str) -> bool {
        self.states.is_empty() || self.states.contains(&state)
    }
}

/// A page: the items in creation order, and whether more follow the last one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub more: bool,
}

impl<T> Page<T> {
    /// A page from up to `limit + 1` items read in order: an extra one only says that more
    /// follow.
    pub fn of_one_more(mut items: Vec<T>, limit: usize) -> Self {
        let more = items.len() > limit;
        items.truncate(limit);
        Self { items, more }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), more: self.more }
    }
}

/// The `limit` first of `items` by `key` whose key is past `after`: one pass to select
/// them, then a sort of the page alone (O(n + limit·log limit)).
pub fn page<T, K: Ord>(
    items: impl Iterator<Item = T>,
    key: impl Fn(&T) -> K,
    after: Option<K>,
    limit: usize,
) -> Page<T> {
    let mut past: Vec<(K, T)> =
        items.map(|i| (key(&i), i)).filter(|(k, _)| after.as_ref().is_none_or(|a| k > a)).collect();
    let more = past.len() > limit;
    if more {
        past.select_nth_unstable_by(limit, |(a, _), (b, _)| a.cmp(b));
        past.truncate(limit);
    }
    past.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
    Page { items: past.into_iter().map(|(_, i)| i).collect(), more }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_the_key_and_say_when_more_follow() {
        let items = [5u64, 1, 4, 2, 3];
        let first = page(items.iter(), |i| **i, None, 2);
        assert_eq!((first.items, first.more), (vec![&1, &2], true));
        let next = page(items.iter(), |i| **i, Some(2), 2);
        assert_eq!((next.items, next.more), (vec![&3, &4], true));
        let last = page(items.iter(), |i| **i, Some(4), 2);
        assert_eq!((last.items, last.more), (vec![&5], false));
        let exact = page(items.iter(), |i| **i, Some(3), 2);
        assert_eq!((exact.items, exact.more), (vec![&4, &5], false), "no empty last page");
        assert_eq!(page(items.iter(), |i| **i, Some(9), 2).items, Vec::<&u64>::new());
    }

    #[test]
    fn one_more_than_the_limit_says_more_follow() {
        assert_eq!(Page::of_one_more(vec![1, 2, 3], 2), Page { items: vec![1, 2], more: true });
        assert_eq!(Page::of_one_more(vec![1, 2], 2), Page { items: vec![1, 2], more: false });
    }

    #[test]
    fn no_states_wants_every_state() {
        let mut listing = Listing::everything();
        assert!(listing.wants("queued"));
        listing.states = vec!["running"];
        assert!(listing.wants("running") && !listing.wants("queued"));
    }
}
