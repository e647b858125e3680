//! The canonical encoding of a [`State`] for stored snapshots.
//!
//! Canonical: every map is written in key order, so equal states encode to equal bytes and the
//! BLAKE3 of the bytes is the state hash that `log verify` recomputes by folding the log.
//! Indexes (names, external ids, ownership, reverse memberships, bound groups) are not written;
//! they are rebuilt on load from what they index.
//!
//! Layout: `format u16 (little-endian) | postcard(SnapshotV1)`.

use std::sync::Arc;

use imbl::{OrdMap, OrdSet, Vector};
use serde::{Deserialize, Serialize};

use super::State;
use super::history::{History, MembershipChange};
use crate::ids::{GroupId, Member, Seq, Timestamp};
use crate::model::{BindingGroups, Group, ResourceRef, User};

/// The snapshot format this build writes and reads.
pub const SNAPSHOT_FORMAT: u16 = 1;

/// Why snapshot bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotDecodeError {
    /// Written by a newer build.
    #[error("unknown snapshot format {0}")]
    UnknownFormat(u16),
    /// Not a valid snapshot.
    #[error("malformed snapshot: {0}")]
    Malformed(String),
}

#[derive(Serialize)]
struct SnapshotV1Ref<'a> {
    seq: Seq,
    recorded_at: Timestamp,
    users: Vec<&'a User>,
    groups: Vec<&'a Group>,
    members: Vec<(GroupId, Vec<Member>)>,
    bindings: Vec<(&'a ResourceRef, &'a BindingGroups)>,
    /// `recorded_at` of each record as the difference from the one before (the first from 0).
    time_deltas: Vec<u64>,
    group_changes: Vec<(GroupId, Vec<MembershipChange>)>,
    member_events: Vec<(Member, Vec<Seq>)>,
}

#[derive(Deserialize)]
struct SnapshotV1 {
    seq: Seq,
    recorded_at: Timestamp,
    users: Vec<User>,
    groups: Vec<Group>,
    members: Vec<(GroupId, Vec<Member>)>,
    bindings: Vec<(ResourceRef, BindingGroups)>,
    time_deltas: Vec<u64>,
    group_changes: Vec<(GroupId, Vec<MembershipChange>)>,
    member_events: Vec<(Member, Vec<Seq>)>,
}

impl State {
    /// Encodes the state canonically (see the module docs).
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let mut previous = 0i64;
        let time_deltas = self
            .history
            .times
            .iter()
            .map(|time| {
                // Times never go backwards, and the first is after 1970.
                let delta = time.0.wrapping_sub(previous) as u64;
                previous = time.0;
                delta
            })
            .collect();
        let snapshot = SnapshotV1Ref {
            seq: self.seq,
            recorded_at: self.recorded_at,
            users: self.users.values().map(|user| &**user).collect(),
            groups: self.groups.values().map(|group| &**group).collect(),
            members: self
                .members
                .iter()
                .map(|(group, set)| (*group, set.iter().copied().collect()))
                .collect(),
            bindings: self.bindings.iter().collect(),
            time_deltas,
            group_changes: self
                .history
                .group_changes
                .iter()
                .map(|(group, changes)| (*group, changes.iter().copied().collect()))
                .collect(),
            member_events: self
                .history
                .member_events
                .iter()
                .map(|(member, seqs)| (*member, seqs.iter().copied().collect()))
                .collect(),
        };
        let mut bytes = SNAPSHOT_FORMAT.to_le_bytes().to_vec();
        // Serialising plain data into a Vec cannot fail.
        bytes.extend(postcard::to_allocvec(&snapshot).expect("postcard encodes every snapshot"));
        bytes
    }

    /// Decodes [`State::encode_snapshot`]'s bytes, rebuilding the indexes.
    pub fn decode_snapshot(bytes: &[u8]) -> Result<State, SnapshotDecodeError> {
        let Some((format, body)) = bytes.split_first_chunk::<2>() else {
            return Err(SnapshotDecodeError::Malformed("shorter than its header".to_owned()));
        };
        let format = u16::from_le_bytes(*format);
        if format != SNAPSHOT_FORMAT {
            return Err(SnapshotDecodeError::UnknownFormat(format));
        }
        let snapshot: SnapshotV1 =
            postcard::from_bytes(body).map_err(|e| SnapshotDecodeError::Malformed(e.to_string()))?;
        let mut state = State {
            seq: snapshot.seq,
            recorded_at: snapshot.recorded_at,
            ..State::default()
        };
        for user in snapshot.users {
            state.index_user(&user);
            state.users.insert(user.id, Arc::new(user));
        }
        for group in snapshot.groups {
            state.index_group(&group);
            state.groups.insert(group.id, Arc::new(group));
        }
        for (group, members) in snapshot.members {
            for member in &members {
                match state.member_of.get_mut(member) {
                    Some(groups) => {
                        groups.insert(group);
                    }
                    None => {
                        state.member_of.insert(*member, OrdSet::unit(group));
                    }
                }
            }
            state.members.insert(group, members.into_iter().collect());
        }
        for (resource, groups) in snapshot.bindings {
            for (group, role) in groups.pairs() {
                match state.bound.get_mut(&group) {
                    Some(set) => {
                        set.insert((resource.clone(), role));
                    }
                    None => {
                        state.bound.insert(group, OrdSet::unit((resource.clone(), role)));
                    }
                }
            }
            state.bindings.insert(resource, groups);
        }
        let mut time = 0i64;
        let times: Vector<Timestamp> = snapshot
            .time_deltas
            .into_iter()
            .map(|delta| {
                time = time.wrapping_add(delta as i64);
                Timestamp(time)
            })
            .collect();
        if times.len() as u64 != state.seq.0 {
            return Err(SnapshotDecodeError::Malformed(format!(
                "{} record times for a state at seq {}",
                times.len(),
                state.seq
            )));
        }
        state.history = History {
            times,
            group_changes: snapshot
                .group_changes
                .into_iter()
                .map(|(group, changes)| (group, Vector::from(changes)))
                .collect::<OrdMap<_, _>>(),
            member_events: snapshot
                .member_events
                .into_iter()
                .map(|(member, seqs)| (member, Vector::from(seqs)))
                .collect::<OrdMap<_, _>>(),
        };
        Ok(state)
    }
}
