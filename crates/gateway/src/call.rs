//! Calls the framework makes into a live connection (reference §1.2 `handle_call`): list,
//! add and remove its subscriptions. A gateway that keeps per-subscription state (STOMP
//! subscription ids, MQTT-SN topic ids) must do these itself, so they go to its task.

use junction_session::SubOptions;
use parking_lot::Mutex;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::oneshot;

/// A subscription as the management API shows it (`topic` is mounted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionInfo {
    /// The filter as the broker routes it (mountpoint included).
    pub topic: String,
    /// QoS.
    pub qos: u8,
    /// No Local (0/1).
    pub nl: u8,
    /// Retain As Published (0/1).
    pub rap: u8,
    /// Retain Handling (0/1/2).
    pub rh: u8,
    /// Protocol subscription id (STOMP `id`), if the protocol has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subid: Option<String>,
}

impl SubscriptionInfo {
    /// From a mounted filter and its options.
    pub fn new(topic: String, opts: &SubOptions, subid: Option<String>) -> SubscriptionInfo {
        SubscriptionInfo {
            topic,
            qos: opts.qos.as_u8(),
            nl: opts.no_local as u8,
            rap: opts.retain_as_published as u8,
            rh: opts.retain_handling,
            subid,
        }
    }
}

/// Why a call failed. The texts are EMQX's API messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The client is not connected to this gateway.
    #[error("client process not found")]
    ClientNotFound,
    /// The gateway does not support this call.
    #[error("unsupported")]
    Unsupported,
    /// The client has no such subscription.
    #[error("Resource not found")]
    NoSuchSubscription,
    /// The gateway refused the request (the text says why).
    #[error("{0}")]
    Refused(String),
    /// The connection did not answer in time.
    #[error("timeout")]
    Timeout,
}

/// A call into a connection task.
#[derive(Debug)]
pub enum ClientCall {
    /// List the subscriptions.
    Subscriptions(oneshot::Sender<Vec<SubscriptionInfo>>),
    /// Subscribe to a client-visible `topic` (not authorized: the API is trusted).
    Subscribe {
        /// Filter as the client would write it.
        topic: String,
        /// Options.
        opts: SubOptions,
        /// Protocol subscription id (`sub_props.subid`).
        subid: Option<String>,
        /// The answer.
        reply: oneshot::Sender<Result<SubscriptionInfo, CallError>>,
    },
    /// A request the management API has the gateway send to its device, in the
    /// protocol's own terms (CoAP's `POST /gateways/coap/clients/{id}/request`): the
    /// API's JSON body in, the device's answer as JSON out.
    Request {
        /// The API's request body.
        body: serde_json::Value,
        /// The answer, once the device gives one.
        reply: oneshot::Sender<Result<serde_json::Value, CallError>>,
    },
    /// Remove the subscription to a client-visible `topic`.
    Unsubscribe {
        /// Filter as the client wrote it.
        topic: String,
        /// The answer.
        reply: oneshot::Sender<Result<(), CallError>>,
    },
}

/// Calls waiting for a connection's task. The registry puts a call here and wakes the task
/// through its session's signal, which the task waits on anyway for deliveries: a
/// connection has no channel of its own to poll for these rare calls.
#[derive(Debug, Default)]
pub struct CallBox {
    pending: AtomicBool,
    queue: Mutex<Vec<ClientCall>>,
}

impl CallBox {
    /// Calls a connection may have waiting; past them a caller is told `timeout`.
    const CAPACITY: usize = 4;

    /// Leave a call (the caller then wakes the task).
    pub fn push(&self, call: ClientCall) -> Result<(), CallError> {
        let mut queue = self.queue.lock();
        if queue.len() >= Self::CAPACITY {
            return Err(CallError::Timeout);
        }
        queue.push(call);
        self.pending.store(true, Ordering::Release);
        Ok(())
    }

    /// The calls waiting, if any (one relaxed load when there are none).
    pub fn take(&self) -> Vec<ClientCall> {
        if !self.pending.load(Ordering::Relaxed) {
            return Vec::new();
        }
        let mut queue = self.queue.lock();
        self.pending.store(false, Ordering::Relaxed);
        std::mem::take(&mut *queue)
    }
}

impl crate::driver::Session {
    /// Answer a framework call for a connection that keeps no state of its own per
    /// subscription (MQTT, MQTT-SN, CoAP's API subscriptions): list, add or remove in
    /// the session (adding is not authorized: the API is trusted); a `Request` is
    /// refused as unsupported. True when a subscription was added: the caller sends what
    /// it brings (retained messages).
    pub fn answer_call(&self, call: ClientCall) -> bool {
        match call {
            ClientCall::Subscriptions(reply) => {
                let list = self
                    .cell
                    .lock()
                    .session
                    .subscriptions
                    .iter()
                    .map(|(filter, opts)| SubscriptionInfo::new(filter.to_string(), opts, None))
                    .collect();
                let _ = reply.send(list);
                false
            }
            ClientCall::Subscribe {
                topic, opts, reply, ..
            } => {
                let result = self
                    .ctx
                    .subscribe(&self.info, &self.cell, &self.mountpoint, &topic, opts)
                    .map(|_| {
                        SubscriptionInfo::new(self.mountpoint.mount_filter(&topic), &opts, None)
                    })
                    .map_err(|e| CallError::Refused(e.to_string()));
                let added = result.is_ok();
                let _ = reply.send(result);
                added
            }
            ClientCall::Request { reply, .. } => {
                let _ = reply.send(Err(CallError::Unsupported));
                false
            }
            ClientCall::Unsubscribe { topic, reply } => {
                let removed =
                    self.ctx
                        .unsubscribe(&self.info, &self.cell, &self.mountpoint, &topic);
                let _ = reply.send(if removed {
                    Ok(())
                } else {
                    Err(CallError::NoSuchSubscription)
                });
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_box_holds_four_calls_and_hands_them_over_once() {
        let calls = CallBox::default();
        assert!(calls.take().is_empty());
        let mut replies = Vec::new();
        for _ in 0..4 {
            let (tx, rx) = oneshot::channel();
            replies.push(rx);
            calls.push(ClientCall::Subscriptions(tx)).unwrap();
        }
        let (tx, _rx) = oneshot::channel();
        assert_eq!(
            calls.push(ClientCall::Subscriptions(tx)).unwrap_err(),
            CallError::Timeout
        );
        assert_eq!(calls.take().len(), 4);
        assert!(calls.take().is_empty());
    }
}
