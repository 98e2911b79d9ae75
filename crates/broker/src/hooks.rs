//! Hook points: a closed set of named extension points, each a priority-ordered chain of
//! typed handlers (reference §1.10).
//!
//! A handler gets the client (for client, session and delivery hooks) and a mutable
//! argument it may read or rewrite, and returns [`Flow::Stop`] to end the chain. Fold hooks
//! (`client.connect`, `client.authenticate`, `client.authorize`, `client.subscribe`,
//! `client.unsubscribe`, `message.publish`) use what the handlers leave in the argument;
//! the others are notifications.
//!
//! An empty chain costs one atomic load, so the hot path (`message.publish`,
//! `message.delivered`) pays nothing until someone hooks in.

use bytes::Bytes;
use junction_session::SubOptions;
use junction_types::{ClientInfo, Message, QoS};
use parking_lot::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// What a handler tells the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Run the next handler.
    Continue,
    /// Skip the remaining handlers.
    Stop,
}

/// Identifies a registered handler, for [`Chain::remove`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HookId(u64);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

struct Entry<H: ?Sized> {
    priority: i32,
    id: HookId,
    handler: Arc<H>,
}

impl<H: ?Sized> Clone for Entry<H> {
    fn clone(&self) -> Self {
        Entry {
            priority: self.priority,
            id: self.id,
            handler: self.handler.clone(),
        }
    }
}

/// One hook point's handlers, highest priority first (equal priorities run in the order
/// they were added).
pub struct Chain<H: ?Sized> {
    active: AtomicBool,
    entries: RwLock<Arc<Vec<Entry<H>>>>,
}

impl<H: ?Sized> Default for Chain<H> {
    fn default() -> Self {
        Chain {
            active: AtomicBool::new(false),
            entries: RwLock::new(Arc::new(Vec::new())),
        }
    }
}

impl<H: ?Sized> std::fmt::Debug for Chain<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain").field("len", &self.len()).finish()
    }
}

impl<H: ?Sized> Chain<H> {
    /// Add a handler; higher `priority` runs earlier.
    pub fn add(&self, priority: i32, handler: Arc<H>) -> HookId {
        let id = HookId(NEXT_ID.fetch_add(1, Ordering::Relaxed));
        let mut entries = self.entries.write();
        let mut next: Vec<Entry<H>> = entries.as_ref().clone();
        let at = next
            .iter()
            .position(|e| e.priority < priority)
            .unwrap_or(next.len());
        next.insert(
            at,
            Entry {
                priority,
                id,
                handler,
            },
        );
        *entries = Arc::new(next);
        self.active.store(true, Ordering::Release);
        id
    }

    /// Remove a handler. Returns whether it was registered.
    pub fn remove(&self, id: HookId) -> bool {
        let mut entries = self.entries.write();
        let before = entries.len();
        let next: Vec<Entry<H>> = entries.iter().filter(|e| e.id != id).cloned().collect();
        let removed = next.len() != before;
        self.active.store(!next.is_empty(), Ordering::Release);
        *entries = Arc::new(next);
        removed
    }

    /// Number of handlers.
    pub fn len(&self) -> usize {
        self.entries.read().len()
    }

    /// True when no handler is registered.
    pub fn is_empty(&self) -> bool {
        !self.active.load(Ordering::Acquire)
    }

    /// The handlers in order, or `None` when there are none (the fast path).
    fn snapshot(&self) -> Option<Arc<Vec<Entry<H>>>> {
        if self.is_empty() {
            None
        } else {
            Some(self.entries.read().clone())
        }
    }
}

/// A handler of a client hook.
pub type ClientHandler<A> = dyn Fn(&ClientInfo, &mut A) -> Flow + Send + Sync;
/// A handler of a message hook that has no client (`message.publish`, `message.dropped`).
pub type MessageHandler<A> = dyn Fn(&mut A) -> Flow + Send + Sync;

impl<A> Chain<ClientHandler<A>> {
    /// Run the chain for `client` over `arg`. Returns `Stop` if a handler stopped it.
    pub fn run(&self, client: &ClientInfo, arg: &mut A) -> Flow {
        let Some(entries) = self.snapshot() else {
            return Flow::Continue;
        };
        for e in entries.iter() {
            if (e.handler)(client, arg) == Flow::Stop {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }
}

impl<A> Chain<MessageHandler<A>> {
    /// Run the chain over `arg`. Returns `Stop` if a handler stopped it.
    pub fn run(&self, arg: &mut A) -> Flow {
        let Some(entries) = self.snapshot() else {
            return Flow::Continue;
        };
        for e in entries.iter() {
            if (e.handler)(arg) == Flow::Stop {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }
}

/// `client.connect`: a handler may refuse the connection by setting `refuse`.
#[derive(Debug, Default)]
pub struct ConnectArgs {
    /// Why the connection is refused (it is, when set).
    pub refuse: Option<String>,
}

/// The outcome of authentication.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AuthnResult {
    /// No authenticator had an opinion: the client is let in (EMQX's anonymous access).
    #[default]
    Ignore,
    /// Authenticated.
    Allow {
        /// Superusers bypass authorization.
        is_superuser: bool,
        /// Disconnect at this time (ms since the epoch), if set.
        expire_at: Option<u64>,
    },
    /// Refused, with a reason (`not_authorized`, `bad_username_or_password`, …).
    Deny(String),
}

impl AuthnResult {
    /// Whether the client may connect.
    pub fn is_allowed(&self) -> bool {
        !matches!(self, AuthnResult::Deny(_))
    }
}

/// `client.authenticate`: the credentials and the result so far (the chain's verdict when
/// handlers run); a handler may overwrite `result`.
#[derive(Debug, Clone, Default)]
pub struct AuthenticateArgs {
    /// The password the client presented, if any.
    pub password: Option<Bytes>,
    /// The verdict.
    pub result: AuthnResult,
}

/// What a client asks to do to a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Publish with this QoS and retain flag.
    Publish {
        /// QoS.
        qos: QoS,
        /// Retain flag.
        retain: bool,
    },
    /// Subscribe with this QoS.
    Subscribe {
        /// QoS.
        qos: QoS,
    },
}

/// The outcome of authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthzResult {
    /// Allowed.
    Allow,
    /// Denied.
    Deny,
}

/// `client.authorize`: a handler may overwrite `result` (the default rule's verdict when
/// handlers run).
#[derive(Debug, Clone)]
pub struct AuthorizeArgs {
    /// The action.
    pub action: Action,
    /// The topic or filter as the client wrote it (before the mountpoint).
    pub topic: String,
    /// The verdict.
    pub result: AuthzResult,
}

/// `client.connack`: how the connection attempt ended (`success`, `not_authorized`, …).
#[derive(Debug, Clone)]
pub struct ConnackArgs {
    /// The result name.
    pub result: String,
}

/// `client.subscribe`: the filters a client asks for; a handler may remove or rewrite them.
/// An emptied list refuses the request.
#[derive(Debug, Clone, Default)]
pub struct SubscribeArgs {
    /// Filters (as the client wrote them) and their options.
    pub filters: Vec<(String, SubOptions)>,
}

/// `client.unsubscribe`: the filters a client drops; a handler may remove or rewrite them.
#[derive(Debug, Clone, Default)]
pub struct UnsubscribeArgs {
    /// Filters as the client wrote them.
    pub filters: Vec<String>,
}

/// `client.disconnected` and `session.terminated`: why.
#[derive(Debug, Clone)]
pub struct ReasonArgs {
    /// The reason (`normal`, `kicked`, `keepalive_timeout`, …).
    pub reason: String,
}

/// `session.subscribed` / `session.unsubscribed`: the (mounted) filter.
#[derive(Debug, Clone)]
pub struct SessionSubArgs {
    /// The filter as the broker routes it (mountpoint included).
    pub filter: String,
    /// Its options (defaults for an unsubscribe).
    pub opts: SubOptions,
}

/// `message.publish`: the message about to be routed; a handler may rewrite it, or set
/// `allow` to false to drop it.
#[derive(Debug)]
pub struct PublishArgs {
    /// The message.
    pub message: Message,
    /// Whether it is routed.
    pub allow: bool,
}

/// `message.delivered` and `message.acked`: the message.
#[derive(Debug, Clone)]
pub struct MessageArgs {
    /// The message as it was routed (mounted topic).
    pub message: Arc<Message>,
}

/// `message.dropped`: the message and why it was dropped.
#[derive(Debug, Clone)]
pub struct DroppedArgs {
    /// The message.
    pub message: Arc<Message>,
    /// `no_subscribers`, `queue_full`, `expired`, `qos0_msg`, …
    pub reason: &'static str,
}

/// Every hook point. The names in comments are the EMQX hook names, used for the gateway
/// counters that count each run.
#[derive(Debug, Default)]
pub struct Hooks {
    /// `client.connect`
    pub client_connect: Chain<ClientHandler<ConnectArgs>>,
    /// `client.authenticate`
    pub client_authenticate: Chain<ClientHandler<AuthenticateArgs>>,
    /// `client.connack`
    pub client_connack: Chain<ClientHandler<ConnackArgs>>,
    /// `client.connected`
    pub client_connected: Chain<ClientHandler<()>>,
    /// `client.disconnected`
    pub client_disconnected: Chain<ClientHandler<ReasonArgs>>,
    /// `client.authorize`
    pub client_authorize: Chain<ClientHandler<AuthorizeArgs>>,
    /// `client.subscribe`
    pub client_subscribe: Chain<ClientHandler<SubscribeArgs>>,
    /// `client.unsubscribe`
    pub client_unsubscribe: Chain<ClientHandler<UnsubscribeArgs>>,
    /// `session.created`
    pub session_created: Chain<ClientHandler<()>>,
    /// `session.resumed`
    pub session_resumed: Chain<ClientHandler<()>>,
    /// `session.discarded`
    pub session_discarded: Chain<ClientHandler<()>>,
    /// `session.takenover`
    pub session_takenover: Chain<ClientHandler<()>>,
    /// `session.subscribed`
    pub session_subscribed: Chain<ClientHandler<SessionSubArgs>>,
    /// `session.unsubscribed`
    pub session_unsubscribed: Chain<ClientHandler<SessionSubArgs>>,
    /// `session.terminated`
    pub session_terminated: Chain<ClientHandler<ReasonArgs>>,
    /// `message.publish`
    pub message_publish: Chain<MessageHandler<PublishArgs>>,
    /// `message.delivered`
    pub message_delivered: Chain<ClientHandler<MessageArgs>>,
    /// `message.acked`
    pub message_acked: Chain<ClientHandler<MessageArgs>>,
    /// `message.dropped`
    pub message_dropped: Chain<MessageHandler<DroppedArgs>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    fn client(id: &str) -> ClientInfo {
        ClientInfo {
            clientid: id.into(),
            username: None,
            protocol: "mqtt",
            proto_ver: "5".into(),
            peername: "127.0.0.1:1".parse().unwrap(),
            sockport: 1883,
            listener: "tcp:default".into(),
            mountpoint: String::new(),
            keepalive: 0,
            clean_start: true,
            expiry_interval: 0,
            connected_at: 0,
            is_superuser: false,
            extras: Default::default(),
        }
    }

    #[test]
    fn handlers_run_by_priority_and_stop_ends_the_chain() {
        let chain: Chain<ClientHandler<Vec<&'static str>>> = Chain::default();
        assert!(chain.is_empty());
        chain.add(
            0,
            Arc::new(|_, v: &mut Vec<&'static str>| {
                v.push("low");
                Flow::Continue
            }),
        );
        let high = chain.add(
            10,
            Arc::new(|_, v: &mut Vec<&'static str>| {
                v.push("high");
                Flow::Continue
            }),
        );
        chain.add(
            5,
            Arc::new(|_, v: &mut Vec<&'static str>| {
                v.push("mid-stop");
                Flow::Stop
            }),
        );
        let mut seen = Vec::new();
        assert_eq!(chain.run(&client("c"), &mut seen), Flow::Stop);
        assert_eq!(seen, vec!["high", "mid-stop"]);
        assert!(chain.remove(high));
        assert!(!chain.remove(high));
        let mut seen = Vec::new();
        chain.run(&client("c"), &mut seen);
        assert_eq!(seen, vec!["mid-stop"]);
    }

    #[test]
    fn a_fold_handler_rewrites_the_argument() {
        let hooks = Hooks::default();
        hooks.client_subscribe.add(
            0,
            Arc::new(|c: &ClientInfo, args: &mut SubscribeArgs| {
                args.filters.retain(|(f, _)| !f.starts_with("secret/"));
                args.filters
                    .push((format!("inbox/{}", c.clientid), SubOptions::default()));
                Flow::Continue
            }),
        );
        let mut args = SubscribeArgs {
            filters: vec![
                ("a/b".into(), SubOptions::default()),
                ("secret/x".into(), SubOptions::default()),
            ],
        };
        hooks.client_subscribe.run(&client("c1"), &mut args);
        let names: Vec<&str> = args.filters.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(names, vec!["a/b", "inbox/c1"]);
    }

    #[test]
    fn removing_the_last_handler_empties_the_chain() {
        let seen = Arc::new(Mutex::new(0));
        let chain: Chain<MessageHandler<u32>> = Chain::default();
        let s = seen.clone();
        let id = chain.add(
            0,
            Arc::new(move |n: &mut u32| {
                *s.lock() += *n;
                Flow::Continue
            }),
        );
        chain.run(&mut 3);
        assert_eq!(*seen.lock(), 3);
        chain.remove(id);
        assert!(chain.is_empty());
        chain.run(&mut 3);
        assert_eq!(*seen.lock(), 3);
    }
}
