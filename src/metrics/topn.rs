//! Outcome counts by source network with a bounded label set: at most `limit`
//! networks have series of their own, everything else is counted under
//! `network="other"`, so each outcome has at most `limit + 1` series.
//!
//! Who gets a series: while fewer than `limit` networks have one, each new
//! network gets one on its first attempt. Every [`rotate`](ByNetwork::rotate)
//! (the feed calls it every [`ROTATE_EVERY`]) the set becomes the `limit`
//! networks with the most attempts, estimated by a space-saving heavy-hitters
//! summary (Metwally et al., 2005) of `8 × limit` candidates (at least 64),
//! whose counts are then halved so recent traffic weighs most. A network that
//! keeps its place keeps its counters; one that loses it stops being written
//! (its series ends) and its later attempts count under `other`; one that
//! gains a place starts from zero. Counters only ever grow while written.
//!
//! Pure and single-threaded: the feed task owns it behind a mutex that is
//! never held across an await.

use std::collections::HashMap;
use std::time::Duration;

use super::class::OutcomeClass;
use super::network::{NetLabels, Network};

/// How often the labelled set is re-chosen.
pub const ROTATE_EVERY: Duration = Duration::from_secs(600);

/// One counter per outcome class.
pub type Counts = [u64; OutcomeClass::COUNT];

/// A network with series of its own.
#[derive(Debug, Clone)]
pub struct Slot {
    pub network: Network,
    pub labels: NetLabels,
    pub counts: Counts,
}

/// The counts, labelled networks first, then `other`.
#[derive(Debug)]
pub struct ByNetwork {
    limit: usize,
    slots: Vec<Slot>,
    index: HashMap<Network, usize>,
    other: Counts,
    other_labels: NetLabels,
    candidates: SpaceSaving,
}

impl ByNetwork {
    /// `limit` is clamped to at least 1.
    pub fn new(limit: usize) -> Self {
        let limit = limit.max(1);
        Self {
            limit,
            slots: Vec::with_capacity(limit),
            index: HashMap::with_capacity(limit),
            other: [0; OutcomeClass::COUNT],
            other_labels: NetLabels::other(),
            candidates: SpaceSaving::new((limit * 8).max(64)),
        }
    }

    /// Counts one attempt. `labels` is called only when `network` is given a
    /// series now (the one time its label text is built).
    pub fn record(
        &mut self,
        network: Network,
        class: OutcomeClass,
        labels: impl FnOnce(Network) -> NetLabels,
    ) {
        self.candidates.observe(network);
        let slot = match self.index.get(&network) {
            Some(&i) => Some(i),
            None if self.slots.len() < self.limit => {
                self.slots.push(Slot {
                    network,
                    labels: labels(network),
                    counts: [0; OutcomeClass::COUNT],
                });
                self.index.insert(network, self.slots.len() - 1);
                Some(self.slots.len() - 1)
            }
            None => None,
        };
        let counts = match slot {
            Some(i) => &mut self.slots[i].counts,
            None => &mut self.other,
        };
        counts[class.index()] += 1;
    }

    /// Re-chooses the labelled set: the `limit` heaviest candidates.
    pub fn rotate(&mut self, mut labels: impl FnMut(Network) -> NetLabels) {
        let top = self.candidates.top(self.limit);
        let mut old: HashMap<Network, Slot> =
            self.slots.drain(..).map(|s| (s.network, s)).collect();
        self.index.clear();
        for network in top {
            let slot = old.remove(&network).unwrap_or_else(|| Slot {
                network,
                labels: labels(network),
                counts: [0; OutcomeClass::COUNT],
            });
            self.index.insert(network, self.slots.len());
            self.slots.push(slot);
        }
        self.candidates.decay();
    }

    /// Networks with series of their own (at most `limit`).
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// Everything else.
    pub fn other(&self) -> (&NetLabels, &Counts) {
        (&self.other_labels, &self.other)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// Space-saving: `capacity` (network, count) pairs; an unseen network takes
/// the place of the smallest, inheriting its count plus one, so a network's
/// count is never underestimated and any network with more than
/// total/capacity attempts is always held.
#[derive(Debug)]
struct SpaceSaving {
    capacity: usize,
    entries: Vec<(Network, u64)>,
    index: HashMap<Network, usize>,
}

impl SpaceSaving {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Vec::with_capacity(capacity),
            index: HashMap::with_capacity(capacity),
        }
    }

    fn observe(&mut self, network: Network) {
        if let Some(&i) = self.index.get(&network) {
            self.entries[i].1 += 1;
        } else if self.entries.len() < self.capacity {
            self.index.insert(network, self.entries.len());
            self.entries.push((network, 1));
        } else if let Some((i, &(evicted, count))) =
            self.entries.iter().enumerate().min_by_key(|(_, e)| e.1)
        {
            self.index.remove(&evicted);
            self.index.insert(network, i);
            self.entries[i] = (network, count + 1);
        }
    }

    /// The `n` largest, largest first; ties in key order (deterministic).
    fn top(&self, n: usize) -> Vec<Network> {
        let mut sorted: Vec<_> = self.entries.clone();
        sorted.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        sorted.into_iter().take(n).map(|(k, _)| k).collect()
    }

    /// Halves every count and forgets what reaches zero.
    fn decay(&mut self) {
        self.entries.retain_mut(|e| {
            e.1 /= 2;
            e.1 > 0
        });
        self.index = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.0, i))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(n: Network) -> NetLabels {
        n.labels(None)
    }

    fn count(by: &ByNetwork, n: Network, class: OutcomeClass) -> Option<u64> {
        by.slots()
            .iter()
            .find(|s| s.network == n)
            .map(|s| s.counts[class.index()])
    }

    #[test]
    fn with_one_place_the_second_network_counts_as_other() {
        let mut by = ByNetwork::new(1);
        by.record(Network::As(1), OutcomeClass::Completed, labels);
        by.record(Network::As(2), OutcomeClass::Completed, labels);
        by.record(Network::As(2), OutcomeClass::Reset, labels);
        assert_eq!(by.slots().len(), 1);
        assert_eq!(count(&by, Network::As(1), OutcomeClass::Completed), Some(1));
        let (other_labels, other) = by.other();
        assert_eq!(other_labels.network, "other");
        assert_eq!(other[OutcomeClass::Completed.index()], 1);
        assert_eq!(other[OutcomeClass::Reset.index()], 1);
    }

    #[test]
    fn rotation_gives_the_places_to_the_heaviest_and_keeps_survivors_counts() {
        let mut by = ByNetwork::new(2);
        for _ in 0..3 {
            by.record(Network::As(1), OutcomeClass::Completed, labels);
        }
        by.record(Network::As(2), OutcomeClass::Completed, labels);
        for _ in 0..5 {
            by.record(Network::As(3), OutcomeClass::Timeout, labels);
        }
        assert_eq!(count(&by, Network::As(3), OutcomeClass::Timeout), None);
        by.rotate(labels);
        let held: Vec<_> = by.slots().iter().map(|s| s.network).collect();
        assert_eq!(held, vec![Network::As(3), Network::As(1)]);
        assert_eq!(count(&by, Network::As(1), OutcomeClass::Completed), Some(3));
        assert_eq!(count(&by, Network::As(3), OutcomeClass::Timeout), Some(0));
        by.record(Network::As(3), OutcomeClass::Timeout, labels);
        assert_eq!(count(&by, Network::As(3), OutcomeClass::Timeout), Some(1));
        // `other` never goes down.
        assert_eq!(by.other().1[OutcomeClass::Timeout.index()], 5);
    }

    #[test]
    fn the_label_set_never_exceeds_the_limit_whatever_arrives() {
        let mut by = ByNetwork::new(5);
        for round in 0..20u32 {
            for i in 0..1000u32 {
                let n = Network::V4((i.wrapping_mul(2_654_435_761) ^ round) << 8);
                by.record(n, OutcomeClass::NotTls, labels);
            }
            // A steady heavy hitter among the noise.
            for _ in 0..300 {
                by.record(Network::As(64500), OutcomeClass::Completed, labels);
            }
            by.rotate(labels);
            assert!(by.slots().len() <= 5);
            assert!(by.candidates.entries.len() <= 64);
        }
        assert_eq!(by.slots()[0].network, Network::As(64500));
    }

    #[test]
    fn space_saving_never_underestimates() {
        let mut s = SpaceSaving::new(2);
        for n in [1, 2, 3, 3, 3] {
            s.observe(Network::As(n));
        }
        let three = s
            .entries
            .iter()
            .find(|e| e.0 == Network::As(3))
            .expect("held");
        assert!(three.1 >= 3);
    }
}
