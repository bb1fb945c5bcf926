//! Read-mostly lookups on the mail path, kept for a moment so that a message costs no store
//! round trips: which tenant a client address or a login belongs to, which tenant accepted a
//! domain, and a domain's signing config.
//!
//! Every change this process commits empties the cache at once (see `Service::commit`), so a
//! `signet serve` that rotates a key signs with the new one from the next message. A change made
//! by another process (the CLI, another node) is seen within [`FRESH_FOR`] — as the DNS server
//! picks up the zone within a second. A lookup that races a commit never stores what it read
//! before the commit (the generation counter).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use signet_keys::{DomainName, SigningConfig};
use signet_store::{AcceptedDomain, Connector};

/// How long an entry may be used without asking the store again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);
/// Entries per map before it starts over (recipient domains are cached too, and vary).
const LIMIT: usize = 50_000;

#[derive(Debug, Default)]
pub(crate) struct Directory {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Bumped by every commit; a lookup started under an older one is not kept.
    generation: u64,
    connectors: Option<Entry<Arc<Vec<Connector>>>>,
    domains: HashMap<DomainName, Entry<Option<AcceptedDomain>>>,
    configs: HashMap<DomainName, Entry<Option<SigningConfig>>>,
}

#[derive(Debug, Clone)]
struct Entry<T> {
    value: T,
    loaded: Instant,
}

impl<T: Clone> Entry<T> {
    fn fresh(&self, now: Instant) -> Option<T> {
        (now.duration_since(self.loaded) < FRESH_FOR).then(|| self.value.clone())
    }
}

/// A lookup in progress: what the cache had, or the generation to store the answer under.
pub(crate) enum Cached<T> {
    Hit(T),
    Miss(u64),
}

impl Directory {
    /// Forgets everything (a commit happened).
    pub(crate) fn clear(&self) {
        let mut state = self.lock();
        state.generation += 1;
        state.connectors = None;
        state.domains.clear();
        state.configs.clear();
    }

    pub(crate) fn connectors(&self) -> Cached<Arc<Vec<Connector>>> {
        let state = self.lock();
        match state
            .connectors
            .as_ref()
            .and_then(|e| e.fresh(Instant::now()))
        {
            Some(value) => Cached::Hit(value),
            None => Cached::Miss(state.generation),
        }
    }

    pub(crate) fn keep_connectors(&self, generation: u64, value: Arc<Vec<Connector>>) {
        let mut state = self.lock();
        if state.generation == generation {
            state.connectors = Some(Entry {
                value,
                loaded: Instant::now(),
            });
        }
    }

    pub(crate) fn domain(&self, name: &DomainName) -> Cached<Option<AcceptedDomain>> {
        let state = self.lock();
        lookup(&state.domains, name, state.generation)
    }

    pub(crate) fn keep_domain(
        &self,
        generation: u64,
        name: &DomainName,
        value: Option<AcceptedDomain>,
    ) {
        let mut state = self.lock();
        if state.generation == generation {
            keep(&mut state.domains, name, value);
        }
    }

    pub(crate) fn config(&self, name: &DomainName) -> Cached<Option<SigningConfig>> {
        let state = self.lock();
        lookup(&state.configs, name, state.generation)
    }

    pub(crate) fn keep_config(
        &self,
        generation: u64,
        name: &DomainName,
        value: Option<SigningConfig>,
    ) {
        let mut state = self.lock();
        if state.generation == generation {
            keep(&mut state.configs, name, value);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn lookup<K: Eq + Hash, T: Clone>(
    map: &HashMap<K, Entry<T>>,
    key: &K,
    generation: u64,
) -> Cached<T> {
    match map.get(key).and_then(|e| e.fresh(Instant::now())) {
        Some(value) => Cached::Hit(value),
        None => Cached::Miss(generation),
    }
}

fn keep<K: Eq + Hash + Clone, T>(map: &mut HashMap<K, Entry<T>>, key: &K, value: T) {
    if map.len() >= LIMIT {
        map.clear();
    }
    map.insert(
        key.clone(),
        Entry {
            value,
            loaded: Instant::now(),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> DomainName {
        "contoso.com".parse().unwrap()
    }

    #[test]
    fn an_answer_read_before_a_commit_is_not_kept() {
        let directory = Directory::default();
        let Cached::Miss(generation) = directory.domain(&name()) else {
            panic!("empty cache")
        };
        directory.clear(); // a commit lands while the lookup is in flight
        directory.keep_domain(generation, &name(), None);
        assert!(matches!(directory.domain(&name()), Cached::Miss(_)));

        let Cached::Miss(generation) = directory.domain(&name()) else {
            panic!("still empty")
        };
        directory.keep_domain(generation, &name(), None);
        assert!(matches!(directory.domain(&name()), Cached::Hit(None)));
        directory.clear();
        assert!(
            matches!(directory.domain(&name()), Cached::Miss(_)),
            "a commit empties it"
        );
    }

    #[test]
    fn entries_go_stale() {
        let directory = Directory::default();
        let Cached::Miss(generation) = directory.config(&name()) else {
            panic!("empty cache")
        };
        directory.keep_config(generation, &name(), None);
        directory.lock().configs.get_mut(&name()).unwrap().loaded -= FRESH_FOR;
        assert!(matches!(directory.config(&name()), Cached::Miss(_)));
    }
}
