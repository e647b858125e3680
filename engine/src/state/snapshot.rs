//! The canonical encoding of a state, with the history index up to the same `seq`, for stored
//! snapshots.
//!
//! Canonical: every collection is written in key order, so equal states encode to equal bytes
//! and the BLAKE3 of the bytes is the state hash that `log verify` recomputes by folding the
//! log. Indexes (names, external ids, ownership, reverse memberships, bound groups) are not
//! written; they are rebuilt on load from what they index.
//!
//! Layout: `format u16 (little-endian)`, then eight sections, each `length u64 | bytes`, in this
//! order: header `(seq, recorded_at)`, users, groups, members `(group, [member])`, bindings,
//! (in format 4 only, written when some are pending: absences `(integration, [(absent,
//! absence)])`), record times (deltas), membership changes `(group, [change])`, member events
//! `(member, [seq])`. A section is a run of postcard values, read one at a time, so loading
//! never holds a decoded copy of the whole state beside the maps it builds. Loading from the
//! store reads the sections one after the other ([`read_snapshot`]) and drops each once it is
//! decoded, so the snapshot is never in memory whole either; the users and the members are
//! decoded on threads of their own while the rest is read. The users' section, the largest, is
//! read in pieces that its decoder drops as it goes. The history index's sections are read and
//! checked with the rest but handed over undecoded ([`HistorySections`]): a tenant decodes them
//! once it serves.

use std::collections::VecDeque;
use std::io::{BufRead as _, Read};
use std::sync::Arc;

use imbl::{OrdMap, OrdSet};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::in_order::{map_in_order, set_in_order};
use super::indexes::{Indexes, UserLookups};
use super::inversion::Inversion;
use super::{GroupEntry, GroupList, State};
use crate::absence::{Absence, Absent};
use crate::event::{Personal, PersonalOwned, PersonalRef};
use crate::history::{HashMap, History, MembershipChange};
use crate::ids::{GroupId, IntegrationName, Member, Seq, Timestamp};
use crate::model::{BindingGroups, Group, ResourceRef, User, UserProfile, erased_profile};
use crate::seal::Opener;
use idpsync_storage::SnapshotReader;

/// The snapshot format this build writes and reads for a state with no pending absences:
/// byte for byte what earlier builds wrote, so that the state hashes of their snapshots and
/// signed checkpoints still verify.
pub const SNAPSHOT_FORMAT: u16 = 3;

/// The format this build writes for a state with pending absences (see [`crate::absence`]):
/// [`SNAPSHOT_FORMAT`] with one more section, the absences, after the bindings.
pub const SNAPSHOT_FORMAT_WITH_ABSENCES: u16 = 4;

/// Sections of a [`SNAPSHOT_FORMAT`] snapshot; one more in [`SNAPSHOT_FORMAT_WITH_ABSENCES`].
const SECTION_COUNT: usize = 8;

/// Why snapshot bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotDecodeError {
    /// Written by another build.
    #[error("unknown snapshot format {0}")]
    UnknownFormat(u16),
    /// Not a valid snapshot.
    #[error("malformed snapshot: {0}")]
    Malformed(String),
}

fn malformed(reason: impl std::fmt::Display) -> SnapshotDecodeError {
    SnapshotDecodeError::Malformed(reason.to_string())
}

/// Writes sections straight into the snapshot's bytes: each begins with a placeholder for its
/// length, filled in when it ends, so that no section is built apart and copied (a section of
/// a large tenant is tens of megabytes).
struct Writer {
    bytes: Vec<u8>,
    /// Where the open section's values begin, just after its length.
    section_start: usize,
}

impl Writer {
    /// A snapshot of `format` whose first section is open, in a buffer of `capacity` bytes.
    fn new(format: u16, capacity: usize) -> Writer {
        let mut bytes = Vec::with_capacity(capacity);
        bytes.extend_from_slice(&format.to_le_bytes());
        let mut writer = Writer {
            bytes,
            section_start: 0,
        };
        writer.open_section();
        writer
    }

    fn open_section(&mut self) {
        self.bytes.extend_from_slice(&[0; 8]);
        self.section_start = self.bytes.len();
    }

    fn item(&mut self, value: &impl Serialize) {
        // Serialising plain data into a Vec cannot fail.
        self.bytes = postcard::to_extend(value, std::mem::take(&mut self.bytes)).expect("postcard encodes every value");
    }

    /// Ends the open section and opens the next.
    fn end_section(&mut self) {
        let len = (self.bytes.len() - self.section_start) as u64;
        self.bytes[self.section_start - 8..self.section_start].copy_from_slice(&len.to_le_bytes());
        self.open_section();
    }

    /// The bytes, without the section opened after the last.
    fn finish(mut self) -> Vec<u8> {
        self.bytes.truncate(self.section_start - 8);
        self.bytes
    }
}

/// Encodes `state` and `history` up to `state.seq()` canonically (see the module docs).
pub fn encode_snapshot(state: &State, history: &History) -> Vec<u8> {
    encode_snapshot_sized(state, history, 0)
}

/// Where a snapshot reads the history index from, a part at a time: the index itself, or the
/// index a tenant's writer goes on extending, locked only for each part, so that a snapshot
/// needs no copy of the whole index (as large as the state on a large tenant) and the writer
/// never waits for more than one part. The index only grows past the snapshot's `seq` while it
/// is read, and what the snapshot reads stops at that `seq`, so the parts agree.
pub(crate) trait HistoryParts {
    /// `f` with the index, as it is now.
    fn read<R>(&self, f: impl FnOnce(&History) -> R) -> R;
}

impl HistoryParts for History {
    fn read<R>(&self, f: impl FnOnce(&History) -> R) -> R {
        f(self)
    }
}

/// Record times a snapshot reads at once from a locked history index.
const TIMES_PER_PART: usize = 1 << 16;

/// [`encode_snapshot`] into a buffer of `expected_len` bytes to begin with: the length of the
/// last snapshot, say, so that a large one is not grown by doubling (which holds up to twice
/// its size, and copies it each time).
pub(crate) fn encode_snapshot_sized(state: &State, history: &impl HistoryParts, expected_len: usize) -> Vec<u8> {
    let seq = state.seq;
    let with_absences = !state.absences.by_integration.is_empty();
    let format = if with_absences {
        SNAPSHOT_FORMAT_WITH_ABSENCES
    } else {
        SNAPSHOT_FORMAT
    };
    let mut out = Writer::new(format, expected_len);
    out.item(&(state.seq, state.recorded_at));
    out.end_section();
    for user in state.users.values() {
        out.item(&StoredUserRef::from(&**user));
    }
    out.end_section();
    for entry in state.groups.values() {
        out.item(&*entry.group);
    }
    out.end_section();
    for (group, entry) in &state.groups {
        if !entry.members.is_empty() {
            out.item(&(group, entry.members.iter().collect::<Vec<_>>()));
        }
    }
    out.end_section();
    for binding in &state.bindings.by_resource {
        out.item(&binding);
    }
    out.end_section();
    if with_absences {
        for (integration, pending) in &state.absences.by_integration {
            out.item(&(integration, pending.iter().collect::<Vec<_>>()));
        }
        out.end_section();
    }
    let mut previous = 0i64;
    let times = seq.0 as usize;
    for start in (0..times).step_by(TIMES_PER_PART) {
        history.read(|history| {
            for time in history.times.iter().take(times).skip(start).take(TIMES_PER_PART) {
                // Times never go backwards, and the first is after 1970.
                out.item(&(time.0.wrapping_sub(previous) as u64));
                previous = time.0;
            }
        });
    }
    out.end_section();
    let mut groups: Vec<GroupId> = history.read(|history| history.group_changes.keys().copied().collect());
    groups.sort_unstable();
    for group in groups {
        history.read(|history| {
            let changes = history.group_changes(group, seq);
            if !changes.is_empty() {
                out.item(&(group, changes));
            }
        });
    }
    out.end_section();
    let mut members: Vec<Member> = history.read(|history| history.member_events.keys().copied().collect());
    members.sort_unstable();
    for member in members {
        history.read(|history| {
            let seqs = history.member_events(member, seq);
            if !seqs.is_empty() {
                out.item(&(member, seqs));
            }
        });
    }
    out.end_section();
    out.finish()
}

/// A user as a snapshot keeps it: the personal fields as logged (sealed, or plain), never the
/// readable profile of a sealed user, so that a snapshot holds no more personal data than the
/// log and stays valid when a key is destroyed. Its `external_id` is the one logged in the
/// clear; one sealed with the profile stays sealed. A user erased by
/// [`crate::Event::UserErasedWithLookup`] keeps only the keyed hash of its externalId, as its
/// personal part (`PersonalRef::Erased`). Users that earlier builds could fold encode exactly
/// as those builds encoded them, so the state hashes of their snapshots and signed checkpoints
/// still verify.
#[derive(Deserialize)]
struct StoredUser {
    id: crate::ids::UserId,
    owner: crate::model::Owner,
    external_id: Option<String>,
    active: bool,
    personal: PersonalOwned,
    erased: bool,
    created: Timestamp,
    last_modified: Timestamp,
    version: Seq,
}

/// [`StoredUser`] borrowed, for encoding; the same bytes.
#[derive(Serialize)]
struct StoredUserRef<'a> {
    id: crate::ids::UserId,
    owner: &'a crate::model::Owner,
    external_id: Option<&'a String>,
    active: bool,
    personal: PersonalRef<'a>,
    erased: bool,
    created: Timestamp,
    last_modified: Timestamp,
    version: Seq,
}

impl<'a> From<&'a User> for StoredUserRef<'a> {
    fn from(user: &'a User) -> Self {
        let (external_id, personal) = match (&user.external_id_hash, &user.sealed) {
            (Some(_), _) => (
                None,
                PersonalRef::Erased {
                    external_id_hash: &user.external_id_hash,
                },
            ),
            (None, Some(sealed)) if sealed.holds_external_id() => (None, PersonalRef::sealed(sealed)),
            (None, Some(sealed)) => (user.external_id.as_ref(), PersonalRef::sealed(sealed)),
            (None, None) => (user.external_id.as_ref(), PersonalRef::Plain(&user.profile)),
        };
        StoredUserRef {
            id: user.id,
            owner: &user.owner,
            external_id,
            active: user.active,
            personal,
            erased: user.erased,
            created: user.created,
            last_modified: user.last_modified,
            version: user.version,
        }
    }
}

impl StoredUser {
    fn into_user(self, opener: &dyn Opener) -> Result<User, SnapshotDecodeError> {
        let mut user = User {
            id: self.id,
            owner: self.owner,
            external_id: self.external_id,
            external_id_hash: None,
            active: self.active,
            // Replaced below by the opened profile or, for a user whose profile cannot be
            // read, by the erased placeholder: formatting that for every user cost a tenant of
            // a million users a tenth of a second at each start.
            profile: UserProfile::default(),
            sealed: None,
            erased: self.erased,
            readable: true,
            created: self.created,
            last_modified: self.last_modified,
            version: self.version,
        };
        let personal = match self.personal {
            PersonalOwned::Erased { external_id_hash } => {
                if !user.erased || user.external_id.is_some() {
                    return Err(malformed(format!(
                        "user {} keeps an erased user's hash without being erased",
                        user.id
                    )));
                }
                user.external_id_hash = external_id_hash;
                user.profile = erased_profile(user.id);
                return Ok(user);
            }
            logged => Personal::try_from(logged).map_err(malformed)?,
        };
        match opener.open(user.id, &personal) {
            Some(fields) => {
                user.profile = fields.profile;
                user.external_id = user.external_id.or(fields.external_id);
            }
            None => {
                user.readable = false;
                user.profile = erased_profile(user.id);
            }
        }
        if let Personal::Sealed(sealed) = personal {
            user.sealed = Some(sealed);
        }
        Ok(user)
    }
}

/// Reads a section's values one by one.
fn items<T: DeserializeOwned>(mut bytes: &[u8]) -> impl Iterator<Item = Result<T, SnapshotDecodeError>> + '_ {
    std::iter::from_fn(move || {
        if bytes.is_empty() {
            return None;
        }
        match postcard::take_from_bytes::<T>(bytes) {
            Ok((value, rest)) => {
                bytes = rest;
                Some(Ok(value))
            }
            Err(error) => {
                bytes = &[];
                Some(Err(malformed(error)))
            }
        }
    })
}

/// Reads the values of a section given in pieces, dropping each piece once its values are
/// decoded: the users' section (23 MB on a tenant of 100,000 users) is not held whole until its
/// decoding ends. (The members' section was tried too: its decoding got slower, and cold start
/// with it, for less memory saved.) A value cut by a piece boundary is decoded from the
/// end of its piece joined to the next piece.
fn items_in_pieces<T: DeserializeOwned>(
    mut pieces: VecDeque<Vec<u8>>,
) -> impl Iterator<Item = Result<T, SnapshotDecodeError>> {
    let mut current = Vec::new();
    let mut at = 0;
    std::iter::from_fn(move || {
        loop {
            if at == current.len() {
                current = pieces.pop_front()?;
                at = 0;
                continue;
            }
            match postcard::take_from_bytes::<T>(&current[at..]) {
                Ok((value, rest)) => {
                    at = current.len() - rest.len();
                    return Some(Ok(value));
                }
                // Whatever the error, a value that runs on into the next piece needs it: the
                // error stands only once no piece is left.
                Err(error) => match pieces.pop_front() {
                    Some(next) => {
                        let mut joined = Vec::with_capacity(current.len() - at + next.len());
                        joined.extend_from_slice(&current[at..]);
                        joined.extend_from_slice(&next);
                        current = joined;
                        at = 0;
                    }
                    None => {
                        current.clear();
                        at = 0;
                        return Some(Err(malformed(error)));
                    }
                },
            }
        }
    })
}

/// A snapshot's sections, read one after the other from any reader: only the sections being
/// decoded are in memory, never the whole snapshot beside the state built from it.
struct Sections<'r> {
    reader: &'r mut dyn Read,
    /// The bytes the snapshot has left: a section's length is checked against them before it
    /// is allocated, so a damaged length cannot ask for an absurd allocation.
    remaining: u64,
    read: usize,
    /// How many sections its format has.
    count: usize,
    /// Whether its format has the absences' section.
    with_absences: bool,
}

impl<'r> Sections<'r> {
    /// Reads and checks the format of the `len` bytes `reader` yields.
    fn new(reader: &'r mut dyn Read, len: u64) -> Result<Sections<'r>, SnapshotDecodeError> {
        let mut format = [0u8; 2];
        reader
            .read_exact(&mut format)
            .map_err(|_| malformed("shorter than its header"))?;
        let with_absences = match u16::from_le_bytes(format) {
            SNAPSHOT_FORMAT => false,
            SNAPSHOT_FORMAT_WITH_ABSENCES => true,
            other => return Err(SnapshotDecodeError::UnknownFormat(other)),
        };
        Ok(Sections {
            reader,
            remaining: len.saturating_sub(2),
            read: 0,
            count: SECTION_COUNT + usize::from(with_absences),
            with_absences,
        })
    }

    /// The next section's bytes.
    fn next_section(&mut self) -> Result<Vec<u8>, SnapshotDecodeError> {
        let (index, len) = self.begin_section()?;
        let section = self.read_piece(index, len)?;
        self.end_section(len)?;
        Ok(section)
    }

    /// The next section's bytes in pieces of `piece_len`, so that its decoder can drop each
    /// piece once it has decoded what was in it (see [`items_in_pieces`]).
    fn next_section_in_pieces(&mut self, piece_len: usize) -> Result<VecDeque<Vec<u8>>, SnapshotDecodeError> {
        let (index, len) = self.begin_section()?;
        let mut pieces = VecDeque::new();
        let mut left = len;
        while left > 0 {
            let want = left.min(piece_len as u64);
            pieces.push_back(self.read_piece(index, want)?);
            left -= want;
        }
        self.end_section(len)?;
        Ok(pieces)
    }

    /// Reads through the next section without keeping its bytes.
    fn skip_section(&mut self) -> Result<(), SnapshotDecodeError> {
        let (index, len) = self.begin_section()?;
        let skipped = std::io::copy(&mut (&mut *self.reader).take(len), &mut std::io::sink())
            .map_err(|e| malformed(format!("section {index}: {e}")))?;
        if skipped != len {
            return Err(malformed(format!("section {index} is truncated")));
        }
        self.end_section(len)
    }

    /// Reads `len` bytes of section `index` (checked against what is left by `begin_section`).
    fn read_piece(&mut self, index: usize, len: u64) -> Result<Vec<u8>, SnapshotDecodeError> {
        let mut piece = Vec::with_capacity(usize::try_from(len).map_err(malformed)?);
        (&mut *self.reader)
            .take(len)
            .read_to_end(&mut piece)
            .map_err(|e| malformed(format!("section {index}: {e}")))?;
        if piece.len() as u64 != len {
            return Err(malformed(format!("section {index} is truncated")));
        }
        Ok(piece)
    }

    /// Reads the next section's length and checks it against what is left: `(index, len)`.
    fn begin_section(&mut self) -> Result<(usize, u64), SnapshotDecodeError> {
        let index = self.read;
        let mut len = [0u8; 8];
        self.reader
            .read_exact(&mut len)
            .map_err(|_| malformed(format!("section {index} has no length")))?;
        let len = u64::from_le_bytes(len);
        let available = self
            .remaining
            .checked_sub(8)
            .ok_or_else(|| malformed(format!("section {index} has no length")))?;
        if len > available {
            return Err(malformed(format!("section {index} is truncated")));
        }
        self.remaining = available;
        Ok((index, len))
    }

    /// Accounts for a section of `len` bytes having been read.
    fn end_section(&mut self, len: u64) -> Result<(), SnapshotDecodeError> {
        self.remaining -= len;
        self.read += 1;
        if self.read == self.count && self.remaining != 0 {
            return Err(malformed("bytes after the last section"));
        }
        Ok(())
    }
}

/// The users and their lookups (the users' part of [`Indexes`]).
type UserMaps = (OrdMap<crate::ids::UserId, Arc<User>>, Indexes);

/// Users opened (decoded, their profiles decrypted) per message between the two threads of
/// [`decode_users`].
const USERS_PER_CHUNK: usize = 1024;

/// The users' section is read in pieces of this many bytes.
const PIECE_LEN: usize = 128 * 1024;

fn decode_users(section: VecDeque<Vec<u8>>, opener: &(dyn Opener + Sync)) -> Result<UserMaps, SnapshotDecodeError> {
    // Opening the users and building their maps take about the same time on a large tenant, and
    // were the slowest part of loading a snapshot: they run on two threads, a chunk at a time.
    std::thread::scope(|scope| {
        let (chunks, opened) = std::sync::mpsc::sync_channel::<Vec<User>>(4);
        let opener_thread = scope.spawn(move || -> Result<(), SnapshotDecodeError> {
            let mut chunk = Vec::with_capacity(USERS_PER_CHUNK);
            for user in items_in_pieces::<StoredUser>(section) {
                chunk.push(user?.into_user(opener)?);
                if chunk.len() == USERS_PER_CHUNK {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(USERS_PER_CHUNK));
                    if chunks.send(full).is_err() {
                        return Ok(());
                    }
                }
            }
            let _ = chunks.send(chunk);
            Ok(())
        });
        // The lookups' entries are gathered as the users arrive, and the users' map is built
        // beside the lookups once all are in.
        let (mut users, mut lookups) = (Vec::new(), UserLookups::default());
        for chunk in opened {
            for user in chunk {
                lookups.add(&user);
                users.push((user.id, Arc::new(user)));
            }
        }
        let mut indexes = Indexes::default();
        let users = std::thread::scope(|scope| {
            let users = scope.spawn(move || map_in_order(users));
            lookups.build_into(&mut indexes);
            users.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
        .map_err(|_| malformed("users out of id order"))?;
        opener_thread
            .join()
            .unwrap_or_else(|_| Err(malformed("a decoding thread panicked")))?;
        Ok((users, indexes))
    })
}

/// Each group's direct members, and each member's groups.
type Memberships = (OrdMap<GroupId, OrdSet<Member>>, OrdMap<Member, GroupList>);

/// Reads the members section once into both directions of the membership.
fn decode_memberships(section: &[u8]) -> Result<Memberships, SnapshotDecodeError> {
    let mut member_sets = Vec::new();
    let mut member_of = Inversion::with_capacity(section.len() / MEMBER_LEN);
    for item in items::<(GroupId, Vec<Member>)>(section) {
        let (group, members) = item?;
        member_of.add(group, &members);
        let members = set_in_order(members).map_err(|_| malformed(format!("members of group {group} out of order")))?;
        member_sets.push((group, members));
    }
    // Checked before the lists are made: each member's list is in its groups' order, free of
    // repeats, only if the groups came in strictly ascending order.
    let member_sets = map_in_order(member_sets).map_err(|_| malformed("member lists out of group order"))?;
    let member_of = member_of.finish();
    Ok((member_sets, member_of))
}

/// The bytes a member takes in the members section: its kind, then its id with its length.
const MEMBER_LEN: usize = 18;

/// `records` is the snapshot's `seq`: one time per record, so the times are sized at once
/// rather than doubling their way there (bounded by the section's length, one byte or more a
/// time, so that a damaged header cannot ask for an absurd allocation).
fn decode_times(records: Seq, deltas: &[u8]) -> Result<Vec<Timestamp>, SnapshotDecodeError> {
    let mut time = 0i64;
    let mut times = Vec::with_capacity(usize::try_from(records.0).unwrap_or(0).min(deltas.len()));
    for delta in items::<u64>(deltas) {
        time = time.wrapping_add(delta? as i64);
        times.push(Timestamp(time));
    }
    Ok(times)
}

/// The history index of a snapshot, read and checked with the snapshot's bytes but not yet
/// decoded: a tenant serves from its state while its index decodes (see
/// [`HistorySections::decode`]).
#[derive(Debug)]
pub struct HistorySections {
    seq: Seq,
    times: Vec<u8>,
    group_changes: Vec<u8>,
    member_events: Vec<u8>,
}

impl HistorySections {
    /// Reads the history's sections of a snapshot at `seq`. The record times are counted
    /// (one value each): a snapshot whose index does not end at its `seq` is refused here,
    /// with the rest of it, rather than when its index is decoded.
    fn read(seq: Seq, sections: &mut Sections<'_>) -> Result<HistorySections, SnapshotDecodeError> {
        let times = sections.next_section()?;
        // A postcard varint ends at its one byte below 0x80.
        let count = times.iter().filter(|byte| **byte < 0x80).count() as u64;
        if count != seq.0 {
            return Err(malformed(format!("{count} record times for a state at seq {seq}")));
        }
        Ok(HistorySections {
            seq,
            times,
            group_changes: sections.next_section()?,
            member_events: sections.next_section()?,
        })
    }

    /// The `seq` the index ends at.
    pub fn seq(&self) -> Seq {
        self.seq
    }

    /// Decodes the index, dropping each section once decoded.
    pub fn decode(self) -> Result<History, SnapshotDecodeError> {
        let HistorySections {
            seq,
            times,
            group_changes,
            member_events,
        } = self;
        let times = decode_times(seq, &times)?;
        let group_changes =
            items::<(GroupId, Vec<MembershipChange>)>(&group_changes).collect::<Result<HashMap<_, _>, _>>()?;
        let member_events = items::<(Member, Vec<Seq>)>(&member_events).collect::<Result<HashMap<_, _>, _>>()?;
        // As many times as `seq`: counted when the sections were read, and a run of varints
        // that decodes has one final byte per value.
        Ok(History {
            times,
            group_changes,
            member_events,
        })
    }
}

/// Decodes [`encode_snapshot`]'s bytes, rebuilding the indexes.
pub fn decode_snapshot(bytes: &[u8], opener: &(dyn Opener + Sync)) -> Result<(State, History), SnapshotDecodeError> {
    let mut reader = bytes;
    let (state, history) = decode(
        &mut Sections::new(&mut reader, bytes.len() as u64)?,
        opener,
        Parts::StateAndHistory,
    )?;
    Ok((state, history.expect("asked for the history").decode()?))
}

/// [`decode_snapshot`] reading the snapshot from the store a section at a time, the history
/// index read but left to decode. The bytes are not checked against their hash until the
/// reader finishes: the caller calls [`SnapshotReader::finish`] and keeps the result only if
/// that succeeds.
pub fn read_snapshot(
    reader: &mut SnapshotReader,
    opener: &(dyn Opener + Sync),
) -> Result<(State, HistorySections), SnapshotDecodeError> {
    let len = reader.remaining();
    let (state, history) = decode(&mut Sections::new(reader, len)?, opener, Parts::StateAndHistory)?;
    Ok((state, history.expect("asked for the history")))
}

/// Only the state of a snapshot, for readers that need no history, read from the store a
/// section at a time (see [`read_snapshot`]).
pub fn read_state(reader: &mut SnapshotReader, opener: &(dyn Opener + Sync)) -> Result<State, SnapshotDecodeError> {
    let len = reader.remaining();
    Ok(decode(&mut Sections::new(reader, len)?, opener, Parts::State)?.0)
}

/// What a snapshot says of its place in the log, read without building its state (see
/// [`read_outline`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotOutline {
    /// The `seq` its header names.
    pub seq: Seq,
    /// The `recorded_at` its header names: the time of the record at `seq`.
    pub recorded_at: Timestamp,
    /// How many record times its history holds: one per record up to `seq`.
    pub times: u64,
    /// The last of those times.
    pub last_time: Option<Timestamp>,
}

/// Steps through a snapshot's sections without decoding its state: checks the format and
/// that the eight sections' lengths add up to the snapshot's, and reads the header and the
/// record times (a value at a time). Every other section is read through and dropped, so the
/// memory taken is a read buffer's, whatever the snapshot's size. The bytes are not checked
/// against their hash until the caller calls [`SnapshotReader::finish`].
pub fn read_outline(reader: &mut SnapshotReader) -> Result<SnapshotOutline, SnapshotDecodeError> {
    let len = reader.remaining();
    let mut sections = Sections::new(reader, len)?;
    let (seq, recorded_at): (Seq, Timestamp) = postcard::from_bytes(&sections.next_section()?).map_err(malformed)?;
    let mut outline = SnapshotOutline {
        seq,
        recorded_at,
        times: 0,
        last_time: None,
    };
    // Users, groups, members, bindings: framing only.
    for _ in 0..4 {
        sections.skip_section()?;
    }
    let (index, times_len) = sections.begin_section()?;
    let mut times = std::io::BufReader::new((&mut *sections.reader).take(times_len));
    let mut time = 0i64;
    while !times
        .fill_buf()
        .map_err(|e| malformed(format!("section {index}: {e}")))?
        .is_empty()
    {
        let mut scratch = [0u8; 0];
        let (delta, _): (u64, _) = postcard::from_io((&mut times, &mut scratch[..])).map_err(malformed)?;
        time = time.wrapping_add(delta as i64);
        outline.times += 1;
        outline.last_time = Some(Timestamp(time));
    }
    drop(times);
    sections.end_section(times_len)?;
    // Membership changes and member events (and the absences, in the format that has them):
    // framing only.
    for _ in 0..2 + usize::from(sections.with_absences) {
        sections.skip_section()?;
    }
    Ok(outline)
}

enum Parts {
    State,
    StateAndHistory,
}

/// Decodes the sections in their order: the users and the members each on a thread of their
/// own as soon as they are read (each thread drops its section when done), the groups and the
/// bindings here, then the history a section at a time.
fn decode(
    sections: &mut Sections<'_>,
    opener: &(dyn Opener + Sync),
    parts: Parts,
) -> Result<(State, Option<HistorySections>), SnapshotDecodeError> {
    let (seq, recorded_at): (Seq, Timestamp) = postcard::from_bytes(&sections.next_section()?).map_err(malformed)?;
    let users = sections.next_section_in_pieces(PIECE_LEN)?;
    let (user_maps, memberships, mut state, history) = std::thread::scope(|scope| {
        let users = scope.spawn(move || decode_users(users, opener));
        let mut state = State {
            seq,
            recorded_at,
            ..State::default()
        };
        let mut memberships = None;
        let rest = (|| {
            let groups = sections.next_section()?;
            let members = sections.next_section()?;
            memberships = Some(scope.spawn(move || decode_memberships(&members)));
            let groups = items::<Group>(&groups).collect::<Result<Vec<Group>, _>>()?;
            state.indexes.index_groups_in_bulk(groups.iter());
            let entries = groups.into_iter().map(|group| {
                let entry = GroupEntry {
                    group: Arc::new(group),
                    members: OrdSet::new(),
                };
                (entry.group.id, entry)
            });
            state.groups = map_in_order(entries.collect()).map_err(|_| malformed("groups out of id order"))?;
            for binding in items::<(ResourceRef, BindingGroups)>(&sections.next_section()?) {
                let (resource, groups) = binding?;
                state.bindings.set(&resource, &groups);
            }
            if sections.with_absences {
                for entry in items::<(IntegrationName, Vec<(Absent, Absence)>)>(&sections.next_section()?) {
                    let (integration, pending) = entry?;
                    state
                        .absences
                        .by_integration
                        .insert(integration, Arc::new(pending.into_iter().collect()));
                }
            }
            match parts {
                Parts::State => Ok(None),
                Parts::StateAndHistory => HistorySections::read(seq, sections).map(Some),
            }
        })();
        fn join<T>(result: std::thread::Result<Result<T, SnapshotDecodeError>>) -> Result<T, SnapshotDecodeError> {
            result.unwrap_or_else(|_| Err(malformed("a decoding thread panicked")))
        }
        let memberships = match memberships {
            Some(thread) => join(thread.join()),
            None => Err(malformed("the snapshot ends before its members")),
        };
        (join(users.join()), memberships, state, rest)
    });
    let (users, user_indexes) = user_maps?;
    state.users = users;
    state.indexes.user_names = user_indexes.user_names;
    state.indexes.user_external_ids = user_indexes.user_external_ids;
    state.indexes.owned_users = user_indexes.owned_users;
    state.indexes.owned_erased_users = user_indexes.owned_erased_users;
    let (member_sets, member_of) = memberships?;
    for (group, members) in member_sets {
        match state.groups.get_mut(&group) {
            Some(entry) => entry.members = members,
            None => {
                return Err(malformed(format!(
                    "members of group {group}, which the snapshot does not have"
                )));
            }
        }
    }
    state.member_of = member_of;
    Ok((state, history?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::WithoutKeys;

    #[test]
    fn each_section_is_its_length_then_its_values_and_nothing_follows_the_last() {
        for capacity in [0, 3, 1 << 10] {
            let mut out = Writer::new(7, capacity);
            out.item(&1u32);
            out.item(&"ab");
            out.end_section();
            out.end_section();
            out.item(&300u64);
            out.end_section();
            let sections = [
                [
                    postcard::to_allocvec(&1u32).unwrap(),
                    postcard::to_allocvec(&"ab").unwrap(),
                ]
                .concat(),
                Vec::new(),
                postcard::to_allocvec(&300u64).unwrap(),
            ];
            let mut expected = 7u16.to_le_bytes().to_vec();
            for section in sections {
                expected.extend_from_slice(&(section.len() as u64).to_le_bytes());
                expected.extend_from_slice(&section);
            }
            assert_eq!(out.finish(), expected, "capacity {capacity}");
        }
    }

    #[test]
    fn values_cut_across_pieces_decode_as_from_one_buffer() {
        let values: Vec<(u32, Vec<u64>)> = (0..40u32)
            .map(|n| (n, (0..u64::from(n % 9)).map(|i| i << (n % 40)).collect()))
            .collect();
        let mut bytes = Vec::new();
        for value in &values {
            bytes.extend(postcard::to_allocvec(value).unwrap());
        }
        for piece_len in [1, 2, 3, 7, 64, bytes.len()] {
            let pieces: VecDeque<Vec<u8>> = bytes.chunks(piece_len).map(<[u8]>::to_vec).collect();
            let decoded: Vec<(u32, Vec<u64>)> = items_in_pieces(pieces).collect::<Result<_, _>>().unwrap();
            assert_eq!(decoded, values, "pieces of {piece_len}");
            // Cut short: the values before the cut, then one error, then nothing.
            let cut: VecDeque<Vec<u8>> = bytes[..bytes.len() - 1].chunks(piece_len).map(<[u8]>::to_vec).collect();
            let decoded: Vec<Result<(u32, Vec<u64>), _>> = items_in_pieces(cut).collect();
            assert_eq!(decoded.len(), values.len(), "pieces of {piece_len}");
            assert!(decoded.last().unwrap().is_err());
            assert!(decoded[..values.len() - 1].iter().all(Result::is_ok));
        }
    }

    #[test]
    fn pending_absences_are_kept_and_a_state_without_them_encodes_as_before() {
        let mut state = State::new();
        assert_eq!(
            encode_snapshot(&state, &History::new())[..2],
            SNAPSHOT_FORMAT.to_le_bytes()
        );
        let integration = IntegrationName::new("okta").unwrap();
        let user = crate::ids::UserId(uuid::Uuid::from_u128(7));
        state
            .absences
            .observe(&integration, &[Absent::User(user)], Timestamp(1_000_000));
        let bytes = encode_snapshot(&state, &History::new());
        assert_eq!(bytes[..2], SNAPSHOT_FORMAT_WITH_ABSENCES.to_le_bytes());
        let (decoded, _) = decode_snapshot(&bytes, &WithoutKeys).unwrap();
        assert_eq!(decoded.absences, state.absences);
        assert_eq!(encode_snapshot(&decoded, &History::new()), bytes);
        // Once nothing is pending, it encodes as a state that never had any.
        state.absences.observe(&integration, &[], Timestamp(2_000_000));
        assert_eq!(
            encode_snapshot(&state, &History::new())[..2],
            SNAPSHOT_FORMAT.to_le_bytes()
        );
    }

    #[test]
    fn a_snapshot_whose_framing_is_damaged_does_not_decode() {
        let bytes = encode_snapshot(&State::new(), &History::new());
        assert!(decode_snapshot(&bytes, &WithoutKeys).is_ok());
        let damaged = |change: &dyn Fn(&mut Vec<u8>)| {
            let mut bytes = bytes.clone();
            change(&mut bytes);
            decode_snapshot(&bytes, &WithoutKeys)
        };
        assert!(matches!(
            damaged(&|b| b.push(0)),
            Err(SnapshotDecodeError::Malformed(reason)) if reason.contains("after the last section")
        ));
        assert!(matches!(
            damaged(&|b| {
                b.pop();
            }),
            Err(SnapshotDecodeError::Malformed(_))
        ));
        assert!(matches!(
            damaged(&|b| b[..2].copy_from_slice(&(SNAPSHOT_FORMAT_WITH_ABSENCES + 1).to_le_bytes())),
            Err(SnapshotDecodeError::UnknownFormat(format)) if format == SNAPSHOT_FORMAT_WITH_ABSENCES + 1
        ));
        // The first section's length, far beyond the bytes: refused before it is allocated.
        assert!(matches!(
            damaged(&|b| b[2..10].copy_from_slice(&u64::MAX.to_le_bytes())),
            Err(SnapshotDecodeError::Malformed(reason)) if reason.contains("section 0 is truncated")
        ));
        assert!(matches!(
            damaged(&|b| b.truncate(1)),
            Err(SnapshotDecodeError::Malformed(_))
        ));
    }
}
