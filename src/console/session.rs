//! The console's server-side sessions: a random id in the cookie, and here, under the hash of
//! that id, the admin token's principal (never its secret), the form token and the expiry.
//!
//! A session lasts [`IDLE_TIMEOUT`] past its last request and never longer than
//! [`MAX_LIFETIME`]; at most [`MAX_SESSIONS`] are kept (the oldest goes first). Sessions live in
//! memory: a restart of the service signs everyone out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use idpsync_scim::Principal;

/// A session ends this long after its last request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after sign-in, however busy.
pub const MAX_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// The most sessions kept at once.
pub const MAX_SESSIONS: usize = 10_000;

/// One signed-in browser.
#[derive(Clone, Debug)]
pub struct Session {
    /// The admin token it signed in with: its tenant and id.
    pub principal: Principal,
    /// The token every form of this session must carry.
    pub csrf: String,
    started: Instant,
    last_seen: Instant,
}

impl Session {
    fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.last_seen) >= IDLE_TIMEOUT || now.duration_since(self.started) >= MAX_LIFETIME
    }
}

/// Every live session, by the hash of its id.
#[derive(Default)]
pub struct Sessions {
    table: Mutex<HashMap<blake3::Hash, Session>>,
}

/// 256 random bits as 64 hex digits.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The key a session id is kept under: the table never holds an id a cookie could replay.
fn key(id: &str) -> blake3::Hash {
    blake3::derive_key("idpsync console session v1", id.as_bytes()).into()
}

impl Sessions {
    /// Starts a session for `principal`; returns its id, for the cookie.
    pub fn start(&self, principal: Principal) -> String {
        let id = random_token();
        let now = Instant::now();
        let session = Session {
            principal,
            csrf: random_token(),
            started: now,
            last_seen: now,
        };
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        table.retain(|_, session| !session.expired(now));
        if table.len() >= MAX_SESSIONS
            && let Some(oldest) = table.iter().min_by_key(|(_, s)| s.started).map(|(k, _)| *k)
        {
            table.remove(&oldest);
        }
        table.insert(key(&id), session);
        id
    }

    /// The live session with this id, its idle time restarted; an expired one is dropped.
    pub fn touch(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let key = key(id);
        let session = table.get_mut(&key)?;
        if session.expired(now) {
            table.remove(&key);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    /// Ends the session with this id, if there is one.
    pub fn end(&self, id: &str) {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).remove(&key(id));
    }
}

#[cfg(test)]
mod tests {
    use idpsync_engine::ids::TokenId;
    use idpsync_storage::TenantId;

    use super::*;

    fn principal() -> Principal {
        Principal {
            tenant: TenantId::new("acme").unwrap(),
            token: TokenId::new(),
        }
    }

    #[test]
    fn a_session_is_found_by_its_id_only_until_it_ends() {
        let sessions = Sessions::default();
        let id = sessions.start(principal());
        let other = sessions.start(principal());
        assert_eq!(id.len(), 64);
        let session = sessions.touch(&id).expect("live");
        assert_ne!(session.csrf, sessions.touch(&other).unwrap().csrf);
        assert!(sessions.touch("not-a-session").is_none());
        sessions.end(&id);
        assert!(sessions.touch(&id).is_none());
        assert!(sessions.touch(&other).is_some());
    }

    #[test]
    fn an_idle_session_expires() {
        let sessions = Sessions::default();
        let id = sessions.start(principal());
        {
            let mut table = sessions.table.lock().unwrap();
            let session = table.get_mut(&key(&id)).unwrap();
            session.last_seen = Instant::now() - IDLE_TIMEOUT;
        }
        assert!(sessions.touch(&id).is_none());
    }
}
