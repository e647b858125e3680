//! [`UniqueList`]: what a driver lists (users, groups, membership edges), in the order added,
//! each key once. Repeats are found through an index of positions into the list, so that a
//! large listing does not hold every key twice.

use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use super::snapshot::{ListedUser, Membership, SnapshotGroup};

/// What makes an item the same as another in a listing.
pub(super) trait Keyed {
    /// The key's type.
    type Key: Hash + Eq + ?Sized;

    /// The item's key.
    fn key(&self) -> &Self::Key;
}

impl Keyed for ListedUser {
    type Key = str;

    fn key(&self) -> &str {
        self.external_id()
    }
}

impl Keyed for SnapshotGroup {
    type Key = str;

    fn key(&self) -> &str {
        &self.external_id
    }
}

impl Keyed for Membership {
    type Key = Membership;

    fn key(&self) -> &Membership {
        self
    }
}

/// Items in the order added, each key once.
pub(super) struct UniqueList<T> {
    items: Vec<T>,
    /// Positions in `items`, by the hash of their keys.
    positions: HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
}

impl<T> Default for UniqueList<T> {
    fn default() -> UniqueList<T> {
        UniqueList {
            items: Vec::new(),
            positions: HashTable::new(),
            hasher: hashbrown::DefaultHashBuilder::default(),
        }
    }
}

impl<T> std::fmt::Debug for UniqueList<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UniqueList").field("len", &self.items.len()).finish()
    }
}

impl<T: Keyed> UniqueList<T> {
    /// Adds `item` unless an item of its key is there; returns whether it was added.
    pub(super) fn push(&mut self, item: T) -> bool {
        let UniqueList {
            items,
            positions,
            hasher,
        } = self;
        let key_at = |position: &u32| items[*position as usize].key();
        let entry = positions.entry(
            hasher.hash_one(item.key()),
            |position| key_at(position) == item.key(),
            |position| hasher.hash_one(key_at(position)),
        );
        match entry {
            Entry::Occupied(_) => false,
            Entry::Vacant(slot) => {
                slot.insert(u32::try_from(items.len()).expect("fewer than 4 billion listed items"));
                items.push(item);
                true
            }
        }
    }

    /// Whether an item of `key` is there.
    pub(super) fn contains(&self, key: &T::Key) -> bool {
        self.positions
            .find(self.hasher.hash_one(key), |position| {
                self.items[*position as usize].key() == key
            })
            .is_some()
    }
}

impl<T> UniqueList<T> {
    /// How many items.
    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    /// The items, in the order added.
    pub(super) fn iter(&self) -> std::slice::Iter<'_, T> {
        self.items.iter()
    }

    /// The items, in the order added; the index goes.
    pub(super) fn into_vec(self) -> Vec<T> {
        self.items
    }
}

impl<'l, T> IntoIterator for &'l UniqueList<T> {
    type Item = &'l T;
    type IntoIter = std::slice::Iter<'l, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::snapshot::ExternalMember;

    fn edge(group: &str, user: &str) -> Membership {
        Membership {
            group: group.to_owned(),
            member: ExternalMember::User(user.to_owned()),
        }
    }

    #[test]
    fn each_key_is_kept_once_in_the_order_first_added() {
        let mut list = UniqueList::default();
        for n in 0..10_000 {
            assert!(list.push(edge(&format!("g{}", n % 7), &format!("u{n}"))));
        }
        assert!(!list.push(edge("g3", "u3")), "a repeat is not added");
        assert!(
            list.push(edge("g4", "u3")),
            "the same user in another group is another edge"
        );
        assert_eq!(list.len(), 10_001);
        assert!(list.contains(&edge("g0", "u7")));
        assert!(!list.contains(&edge("g1", "u7")));
        let items = list.into_vec();
        assert_eq!(items[0], edge("g0", "u0"));
        assert_eq!(items[10_000], edge("g4", "u3"));
    }
}
