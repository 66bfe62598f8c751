//! Maps of ledger groups split in two by the top bit of the key, so that the ledger is built
//! on two threads, each filling its own half (and the halves are put together without a copy).

use hashbrown::{DefaultHashBuilder, HashMap};

/// Which half a key belongs to.
pub fn shard_of(key: u128) -> usize {
    (key >> 127) as usize
}

#[derive(Debug)]
pub struct Sharded<V>([HashMap<u128, V>; 2]);

impl<V> Default for Sharded<V> {
    fn default() -> Self {
        Sharded([HashMap::new(), HashMap::new()])
    }
}

impl<V> Sharded<V> {
    pub fn get(&self, key: &u128) -> Option<&V> {
        self.0[shard_of(*key)].get(key)
    }

    pub fn get_mut(&mut self, key: &u128) -> Option<&mut V> {
        self.0[shard_of(*key)].get_mut(key)
    }

    pub fn entry(
        &mut self,
        key: u128,
    ) -> hashbrown::hash_map::Entry<'_, u128, V, DefaultHashBuilder> {
        self.0[shard_of(key)].entry(key)
    }

    pub fn remove(&mut self, key: &u128) -> Option<V> {
        self.0[shard_of(*key)].remove(key)
    }

    pub fn contains_key(&self, key: &u128) -> bool {
        self.0[shard_of(*key)].contains_key(key)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.0[0].len() + self.0[1].len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&u128, &V)> {
        self.0[0].iter().chain(self.0[1].iter())
    }

    /// Room for `n` keys spread over both halves.
    pub fn reserve(&mut self, n: usize) {
        for half in &mut self.0 {
            half.reserve(n / 2 + 1);
        }
    }

    /// Take half `i` of `other` (built on another thread) in place of this one's.
    pub fn take_half(&mut self, other: &mut Sharded<V>, i: usize) {
        std::mem::swap(&mut self.0[i], &mut other.0[i]);
    }
}
