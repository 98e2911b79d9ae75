//! The message layer for one peer (RFC 7252 §4), sans-IO and clock-free: the caller
//! passes `now` in milliseconds of any monotonic clock, sends what the endpoint returns,
//! and calls [`Endpoint::handle_timeout`] at [`Endpoint::poll_timeout`].
//!
//! Incoming CON and NON messages are deduplicated by Message ID (§4.5); outgoing CON
//! messages are retransmitted with exponential back-off until an ACK or RST matches them
//! or MAX_RETRANSMIT is reached (§4.2). Randomness (first timeout, first Message ID) comes
//! from a seed the caller gives, so runs are reproducible.

use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};

use crate::dedup::{DedupTable, Seen};
use crate::message::Message;
use crate::msg_type::MessageType;
use crate::params::Params;
use crate::token::Token;

/// What to do with an incoming message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A CON or NON not seen before: process it. A CON must be acknowledged; call
    /// [`Endpoint::record_response`] with the ACK (piggy-backed or empty) once sent.
    New,
    /// An Empty CON ("ping", RFC 7252 §4.3): send this Reset.
    Ping(Message),
    /// A CON or NON seen within its lifetime (§4.5): do not process it again. For a CON,
    /// resend the response carried here; `None` means none was recorded yet (still being
    /// processed) or the message was a NON, which is silently ignored.
    Duplicate(Option<Bytes>),
    /// An ACK matching an outstanding CON: the exchange is complete; a non-empty ACK
    /// carries the piggy-backed response (§5.2.1).
    Acknowledged {
        /// The Message ID of the CON.
        message_id: u16,
        /// The Token of the CON.
        token: Token,
    },
    /// A RST matching an outstanding CON or a recent NON: the peer rejected it, e.g. to
    /// cancel an observation (RFC 7641 §3.6).
    Reset {
        /// The Message ID of the rejected message.
        message_id: u16,
        /// The Token of the rejected message.
        token: Token,
    },
    /// Nothing to do: an ACK or RST matching nothing we sent, or an Empty NON or an
    /// Empty message of another kind, which RFC 7252 §4.3 forbids (silently ignored).
    Ignore,
}

/// What a timeout produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeoutEvent {
    /// Send this CON again (same Message ID).
    Retransmit(Message),
    /// No ACK or RST after MAX_RETRANSMIT retransmissions: the exchange failed (§4.2).
    Failed {
        /// The Message ID of the CON.
        message_id: u16,
        /// The Token of the CON.
        token: Token,
    },
}

/// Why a message could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Already tracking as many outgoing messages as allowed.
    #[error(
        "{0} outgoing messages already tracked for this peer [RFC 7252 §4.7 congestion control]"
    )]
    TooManyOutstanding(usize),
}

/// An outgoing CON waiting for its ACK or RST.
#[derive(Debug, Clone)]
struct Outgoing {
    message: Message,
    retransmissions: u32,
    timeout_ms: u64,
    deadline_ms: u64,
}

/// The message layer state for one peer.
#[derive(Debug, Clone)]
pub struct Endpoint {
    params: Params,
    dedup: DedupTable,
    limit: usize,
    outgoing: BTreeMap<u16, Outgoing>,
    /// Recently sent NONs (Message ID → Token, expiry), so a RST can be matched.
    recent_non: BTreeMap<u16, (Token, u64)>,
    recent_non_order: VecDeque<u16>,
    next_message_id: u16,
    rng: SplitMix64,
}

impl Endpoint {
    /// An endpoint with `params`, remembering at most `capacity` incoming Message IDs and
    /// tracking at most `capacity` outgoing messages, with randomness from `seed`.
    pub fn new(params: Params, capacity: usize, seed: u64) -> Endpoint {
        let mut rng = SplitMix64(seed);
        // A randomized first Message ID (RFC 7252 §4.4).
        let next_message_id = (rng.next() >> 48) as u16;
        Endpoint {
            params,
            dedup: DedupTable::new(capacity),
            limit: capacity.min(usize::from(u16::MAX)),
            outgoing: BTreeMap::new(),
            recent_non: BTreeMap::new(),
            recent_non_order: VecDeque::new(),
            next_message_id,
            rng,
        }
    }

    /// The transmission parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Outgoing CONs still waiting for an ACK or RST (compare with NSTART, §4.7).
    pub fn outstanding(&self) -> usize {
        self.outgoing.len()
    }

    /// Classifies an incoming message at `now_ms` and updates the state.
    pub fn handle_incoming(&mut self, msg: &Message, now_ms: u64) -> Incoming {
        match msg.message_type {
            MessageType::Confirmable if msg.is_empty() => {
                Incoming::Ping(Message::reset(msg.message_id))
            }
            MessageType::NonConfirmable if msg.is_empty() => Incoming::Ignore,
            MessageType::Confirmable | MessageType::NonConfirmable => {
                let lifetime = if msg.message_type == MessageType::Confirmable {
                    self.params.exchange_lifetime_ms()
                } else {
                    self.params.non_lifetime_ms()
                };
                match self.dedup.check(msg.message_id, now_ms, lifetime) {
                    Seen::New => Incoming::New,
                    Seen::Duplicate(response) => Incoming::Duplicate(response),
                }
            }
            MessageType::Acknowledgement => match self.outgoing.remove(&msg.message_id) {
                Some(out) => Incoming::Acknowledged {
                    message_id: msg.message_id,
                    token: out.message.token,
                },
                None => Incoming::Ignore,
            },
            MessageType::Reset => {
                // A RST must be Empty (§4.2); a non-empty one is rejected by ignoring it.
                if !msg.is_empty() {
                    return Incoming::Ignore;
                }
                if let Some(out) = self.outgoing.remove(&msg.message_id) {
                    return Incoming::Reset {
                        message_id: msg.message_id,
                        token: out.message.token,
                    };
                }
                match self.recent_non.remove(&msg.message_id) {
                    Some((token, expires)) if now_ms < expires => Incoming::Reset {
                        message_id: msg.message_id,
                        token,
                    },
                    _ => Incoming::Ignore,
                }
            }
        }
    }

    /// Remembers `response` (encoded, as sent) for the incoming message
    /// `request_message_id`, so a duplicate is answered with the same octets (§4.5). False if that Message ID is not remembered.
    pub fn record_response(&mut self, request_message_id: u16, response: &[u8]) -> bool {
        self.dedup.record_response(request_message_id, response)
    }

    /// Prepares `msg` to be sent as a CON at `now_ms`: sets its type and a fresh Message ID,
    /// and starts its retransmission timer. Send the returned message.
    pub fn send_confirmable(
        &mut self,
        mut msg: Message,
        now_ms: u64,
    ) -> Result<Message, SendError> {
        if self.outgoing.len() >= self.limit {
            return Err(SendError::TooManyOutstanding(self.limit));
        }
        msg.message_type = MessageType::Confirmable;
        msg.message_id = self.allocate_message_id(now_ms);
        let timeout_ms = self.params.initial_timeout_ms(self.rng.next());
        self.outgoing.insert(
            msg.message_id,
            Outgoing {
                message: msg.clone(),
                retransmissions: 0,
                timeout_ms,
                deadline_ms: now_ms.saturating_add(timeout_ms),
            },
        );
        Ok(msg)
    }

    /// Prepares `msg` to be sent as a NON at `now_ms`: sets its type and a fresh Message ID,
    /// and remembers it for NON_LIFETIME so a RST can be matched. Send the returned message.
    pub fn send_non_confirmable(&mut self, mut msg: Message, now_ms: u64) -> Message {
        msg.message_type = MessageType::NonConfirmable;
        msg.message_id = self.allocate_message_id(now_ms);
        if self.limit > 0 {
            while self.recent_non.len() >= self.limit {
                match self.recent_non_order.pop_front() {
                    Some(id) => {
                        self.recent_non.remove(&id);
                    }
                    None => self.recent_non.clear(),
                }
            }
            let expires = now_ms.saturating_add(self.params.non_lifetime_ms());
            if self
                .recent_non
                .insert(msg.message_id, (msg.token, expires))
                .is_none()
            {
                self.recent_non_order.push_back(msg.message_id);
            }
        }
        msg
    }

    /// Prepares `msg`, a NON response, to be sent: sets its type and a fresh Message ID
    /// (one no tracked message holds), without remembering it: a Reset to a response
    /// means nothing (RFC 7252 §5.2.3), so nothing needs matching.
    pub fn send_non_response(&mut self, mut msg: Message, now_ms: u64) -> Message {
        msg.message_type = MessageType::NonConfirmable;
        msg.message_id = self.allocate_message_id(now_ms);
        msg
    }

    /// Stops retransmitting the CON `message_id`; false if it was not outstanding.
    pub fn cancel(&mut self, message_id: u16) -> bool {
        self.outgoing.remove(&message_id).is_some()
    }

    /// When [`Endpoint::handle_timeout`] should next be called, if anything is pending:
    /// a retransmission, or the end of what is remembered (a duplicate's cached response,
    /// a NON's Reset match), so that an idle peer's memory is freed when it expires.
    pub fn poll_timeout(&self) -> Option<u64> {
        let recent_non = self
            .recent_non_order
            .front()
            .and_then(|id| self.recent_non.get(id))
            .map(|(_, expires)| *expires);
        [
            self.outgoing.values().map(|o| o.deadline_ms).min(),
            self.dedup.next_expiry(),
            recent_non,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Handles every deadline at or before `now_ms`: CONs to retransmit, with the timeout
    /// doubled (§4.2), and exchanges that failed, in Message ID order.
    pub fn handle_timeout(&mut self, now_ms: u64) -> Vec<TimeoutEvent> {
        let mut events = Vec::new();
        let max_retransmit = self.params.max_retransmit;
        self.outgoing.retain(|&message_id, out| {
            if now_ms < out.deadline_ms {
                return true;
            }
            if out.retransmissions >= max_retransmit {
                events.push(TimeoutEvent::Failed {
                    message_id,
                    token: out.message.token,
                });
                return false;
            }
            out.retransmissions += 1;
            out.timeout_ms = out.timeout_ms.saturating_mul(2);
            out.deadline_ms = now_ms.saturating_add(out.timeout_ms);
            events.push(TimeoutEvent::Retransmit(out.message.clone()));
            true
        });
        self.dedup.purge(now_ms);
        self.purge_recent_non(now_ms);
        events
    }

    /// A Message ID not used by an outstanding CON or a live recent NON.
    fn allocate_message_id(&mut self, now_ms: u64) -> u16 {
        self.purge_recent_non(now_ms);
        // At most `limit` < 65536 IDs are in use, so a free one exists.
        for _ in 0..=u16::MAX {
            let id = self.next_message_id;
            self.next_message_id = id.wrapping_add(1);
            if !self.outgoing.contains_key(&id) && !self.recent_non.contains_key(&id) {
                return id;
            }
        }
        self.next_message_id
    }

    /// Forgets sent NONs older than NON_LIFETIME.
    fn purge_recent_non(&mut self, now_ms: u64) {
        while let Some(&id) = self.recent_non_order.front() {
            match self.recent_non.get(&id) {
                Some((_, expires)) if now_ms < *expires => break,
                _ => {
                    self.recent_non.remove(&id);
                    self.recent_non_order.pop_front();
                }
            }
        }
        if self.recent_non.is_empty() {
            self.recent_non = BTreeMap::new();
            self.recent_non_order = VecDeque::new();
        }
    }
}

/// SplitMix64, a small deterministic generator: enough for timeouts and Message IDs,
/// which need spread, not secrecy.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    /// The next 64 pseudo-random bits.
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code::Code;

    fn request(message_type: MessageType, message_id: u16) -> Message {
        Message::new(message_type, Code::GET, message_id).with_token(Token::from_u64(9))
    }

    fn notification() -> Message {
        Message::new(MessageType::Confirmable, Code::CONTENT, 0)
            .with_token(Token::from_u64(0xAB))
            .with_payload(&b"21.5"[..])
    }

    /// Drives the fake clock from deadline to deadline, returning (time, event) pairs.
    fn run_to_completion(ep: &mut Endpoint) -> Vec<(u64, TimeoutEvent)> {
        let mut log = Vec::new();
        while let Some(deadline) = ep.poll_timeout() {
            for event in ep.handle_timeout(deadline) {
                log.push((deadline, event));
            }
        }
        log
    }

    #[test]
    fn a_con_is_retransmitted_four_times_with_doubling_then_fails() {
        for seed in 0..50 {
            let mut ep = Endpoint::new(Params::default(), 16, seed);
            let sent = ep.send_confirmable(notification(), 0).unwrap();
            let first = ep.poll_timeout().unwrap();
            assert!((2_000..=3_000).contains(&first), "first timeout {first} ms");
            let log = run_to_completion(&mut ep);
            let times: Vec<u64> = log.iter().map(|(t, _)| *t).collect();
            // Retransmissions at T, 3T, 7T, 15T; failure at 31T ≤ MAX_TRANSMIT_WAIT.
            assert_eq!(times, [first, 3 * first, 7 * first, 15 * first, 31 * first]);
            for (_, event) in &log[..4] {
                assert_eq!(event, &TimeoutEvent::Retransmit(sent.clone()));
            }
            assert_eq!(
                log[4].1,
                TimeoutEvent::Failed {
                    message_id: sent.message_id,
                    token: sent.token
                }
            );
            assert!(31 * first <= Params::default().max_transmit_wait_ms());
            assert_eq!(ep.outstanding(), 0);
        }
    }

    #[test]
    fn the_longest_first_timeout_fails_exactly_at_max_transmit_wait() {
        // Pin the draw: seeds are arbitrary, so take the first giving the 3 s maximum.
        let mut ep = (0..100_000)
            .map(|seed| {
                let mut ep = Endpoint::new(Params::default(), 16, seed);
                ep.send_confirmable(notification(), 0).unwrap();
                ep
            })
            .find(|ep| ep.poll_timeout() == Some(3_000))
            .expect("some seed draws the longest first timeout");
        let log = run_to_completion(&mut ep);
        let last = log.last().map(|(t, _)| *t);
        assert_eq!(last, Some(93_000));
        assert_eq!(
            log.iter()
                .filter(|(_, e)| matches!(e, TimeoutEvent::Retransmit(_)))
                .count(),
            4
        );
    }

    #[test]
    fn nothing_happens_before_the_deadline() {
        let mut ep = Endpoint::new(Params::default(), 16, 3);
        ep.send_confirmable(notification(), 1_000).unwrap();
        let deadline = ep.poll_timeout().unwrap();
        assert!(ep.handle_timeout(deadline - 1).is_empty());
        assert_eq!(ep.handle_timeout(deadline).len(), 1);
    }

    #[test]
    fn an_ack_completes_the_exchange_and_stops_retransmission() {
        let mut ep = Endpoint::new(Params::default(), 16, 7);
        let sent = ep.send_confirmable(notification(), 0).unwrap();
        let ack = Message::empty_ack(sent.message_id);
        assert_eq!(
            ep.handle_incoming(&ack, 500),
            Incoming::Acknowledged {
                message_id: sent.message_id,
                token: sent.token
            }
        );
        assert_eq!(ep.poll_timeout(), None);
        assert_eq!(
            ep.handle_incoming(&ack, 600),
            Incoming::Ignore,
            "a second ACK matches nothing"
        );
    }

    #[test]
    fn a_reset_is_reported_for_con_and_recent_non() {
        let mut ep = Endpoint::new(Params::default(), 16, 7);
        let con = ep.send_confirmable(notification(), 0).unwrap();
        assert_eq!(
            ep.handle_incoming(&Message::reset(con.message_id), 10),
            Incoming::Reset {
                message_id: con.message_id,
                token: con.token
            }
        );
        let non = ep.send_non_confirmable(notification(), 20);
        assert_ne!(non.message_id, con.message_id);
        assert_eq!(non.message_type, MessageType::NonConfirmable);
        let rst = Message::reset(non.message_id);
        assert_eq!(
            ep.handle_incoming(&rst, 30),
            Incoming::Reset {
                message_id: non.message_id,
                token: non.token
            }
        );
        let late = ep.send_non_confirmable(notification(), 40);
        let after = 40 + Params::default().non_lifetime_ms();
        assert_eq!(
            ep.handle_incoming(&Message::reset(late.message_id), after),
            Incoming::Ignore
        );
    }

    #[test]
    fn message_ids_are_sequential_from_a_seeded_start_and_skip_ids_in_use() {
        let mut a = Endpoint::new(Params::default(), 16, 99);
        let mut b = Endpoint::new(Params::default(), 16, 99);
        let first = a.send_confirmable(notification(), 0).unwrap().message_id;
        assert_eq!(
            b.send_confirmable(notification(), 0).unwrap().message_id,
            first
        );
        let second = a.send_confirmable(notification(), 0).unwrap().message_id;
        assert_eq!(second, first.wrapping_add(1));
        assert_eq!(a.outstanding(), 2);
    }

    #[test]
    fn outgoing_messages_are_bounded() {
        let mut ep = Endpoint::new(Params::default(), 2, 1);
        ep.send_confirmable(notification(), 0).unwrap();
        ep.send_confirmable(notification(), 0).unwrap();
        assert_eq!(
            ep.send_confirmable(notification(), 0),
            Err(SendError::TooManyOutstanding(2))
        );
        for i in 0..10 {
            ep.send_non_confirmable(notification(), i);
        }
        assert!(ep.recent_non.len() <= 2 && ep.recent_non_order.len() <= 2);
    }

    #[test]
    fn a_duplicate_con_is_answered_with_the_cached_response_within_exchange_lifetime() {
        let mut ep = Endpoint::new(Params::default(), 16, 0);
        let req = request(MessageType::Confirmable, 0x1234);
        assert_eq!(ep.handle_incoming(&req, 0), Incoming::New);
        assert_eq!(
            ep.handle_incoming(&req, 100),
            Incoming::Duplicate(None),
            "still processing"
        );
        let resp = Bytes::from_static(b"the response as sent");
        assert!(ep.record_response(req.message_id, &resp));
        assert_eq!(
            ep.handle_incoming(&req, 246_999),
            Incoming::Duplicate(Some(resp))
        );
        assert_eq!(
            ep.handle_incoming(&req, 247_000),
            Incoming::New,
            "lifetime over"
        );
    }

    #[test]
    fn an_idle_peer_is_woken_when_what_it_remembers_expires_and_then_holds_nothing() {
        let mut ep = Endpoint::new(Params::default(), 16, 0);
        assert_eq!(
            ep.poll_timeout(),
            None,
            "nothing pending, nothing remembered"
        );
        let req = request(MessageType::Confirmable, 3);
        assert_eq!(ep.handle_incoming(&req, 1_000), Incoming::New);
        ep.record_response(3, b"response");
        // The cached response lives EXCHANGE_LIFETIME (247 s): the endpoint asks to be
        // woken then.
        assert_eq!(ep.poll_timeout(), Some(248_000));
        assert!(ep.handle_timeout(248_000).is_empty());
        assert!(ep.dedup.is_empty());
        assert_eq!(ep.poll_timeout(), None);
    }

    #[test]
    fn a_duplicate_non_is_ignored_within_non_lifetime_only() {
        let mut ep = Endpoint::new(Params::default(), 16, 0);
        let req = request(MessageType::NonConfirmable, 7);
        assert_eq!(ep.handle_incoming(&req, 1_000), Incoming::New);
        assert_eq!(ep.handle_incoming(&req, 145_999), Incoming::Duplicate(None));
        assert_eq!(ep.handle_incoming(&req, 146_000), Incoming::New);
    }

    #[test]
    fn the_dedup_table_is_bounded_and_forgets_the_oldest() {
        let mut ep = Endpoint::new(Params::default(), 4, 0);
        for id in 0..5 {
            assert_eq!(
                ep.handle_incoming(&request(MessageType::Confirmable, id), 10),
                Incoming::New
            );
        }
        assert_eq!(ep.dedup.len(), 4);
        assert_eq!(
            ep.handle_incoming(&request(MessageType::Confirmable, 4), 11),
            Incoming::Duplicate(None)
        );
        assert_eq!(
            ep.handle_incoming(&request(MessageType::Confirmable, 0), 12),
            Incoming::New
        );
    }

    #[test]
    fn a_ping_is_answered_with_reset_and_not_remembered() {
        let mut ep = Endpoint::new(Params::default(), 4, 0);
        let ping = Message::ping(77);
        assert_eq!(
            ep.handle_incoming(&ping, 0),
            Incoming::Ping(Message::reset(77))
        );
        assert_eq!(
            ep.handle_incoming(&ping, 1),
            Incoming::Ping(Message::reset(77))
        );
        assert!(ep.dedup.is_empty());
    }

    #[test]
    fn empty_non_stray_ack_and_non_empty_rst_are_ignored() {
        let mut ep = Endpoint::new(Params::default(), 4, 0);
        let empty_non = Message::new(MessageType::NonConfirmable, Code::EMPTY, 1);
        assert_eq!(ep.handle_incoming(&empty_non, 0), Incoming::Ignore);
        assert_eq!(
            ep.handle_incoming(&Message::empty_ack(5), 0),
            Incoming::Ignore
        );
        let con = ep.send_confirmable(notification(), 0).unwrap();
        let mut rst = Message::reset(con.message_id);
        rst.code = Code::CONTENT;
        assert_eq!(ep.handle_incoming(&rst, 1), Incoming::Ignore);
        assert_eq!(ep.outstanding(), 1);
    }

    #[test]
    fn cancel_stops_retransmission() {
        let mut ep = Endpoint::new(Params::default(), 4, 0);
        let con = ep.send_confirmable(notification(), 0).unwrap();
        assert!(ep.cancel(con.message_id));
        assert!(!ep.cancel(con.message_id));
        assert_eq!(ep.poll_timeout(), None);
    }
}
