//! CoAP messages in and out of a gateway's datagrams, counted in its metrics: what every
//! gateway on the CoAP message layer (this one, LwM2M) does the same way.

use bytes::{Bytes, BytesMut};
use junction_codec_coap::{decode, encode, Message};
use junction_gateway::driver::datagram::Peer;
use junction_gateway::metrics::Frame;
use junction_gateway::GatewayCtx;

/// `msg` encoded, counted as a sent `frame`; `None` (counted as too large) if it cannot
/// be encoded.
pub fn encode_counted(ctx: &GatewayCtx, frame: Frame, msg: &Message) -> Option<Bytes> {
    let mut buf = BytesMut::new();
    if encode(msg, &mut buf).is_err() {
        ctx.metrics.delivery_dropped_too_large.inc();
        return None;
    }
    ctx.metrics.sent(frame);
    Some(buf.freeze())
}

/// A datagram decoded, counted as a received `frame`; a format error is counted, and
/// `Err` carries the Reset it gets when it was confirmable (RFC 7252 §4.2).
pub fn decode_counted(
    ctx: &GatewayCtx,
    frame: Frame,
    datagram: Bytes,
) -> Result<Message, Option<Message>> {
    match decode(datagram) {
        Ok(msg) => {
            ctx.metrics.received(frame);
            Ok(msg)
        }
        Err(e) => {
            tracing::debug!(gateway = ctx.name, error = %e, "coap format error");
            ctx.metrics.packets_frame_error.inc();
            Err(e.reset_reply())
        }
    }
}

/// A datagram from an address without a client: the request it carries, or `None` when
/// the message layer answers it (a Reset to a ping or to a confirmable message with a
/// format error, pushed on `reply`) or ignores it (a response or an acknowledgement of
/// nothing this address has, RFC 7252 §4.2-§4.3).
pub fn unsolicited_request(
    ctx: &GatewayCtx,
    frame: Frame,
    peer: &Peer,
    datagram: &Bytes,
    reply: &mut Vec<Bytes>,
) -> Option<Message> {
    let msg = match decode_counted(ctx, frame, datagram.clone()) {
        Ok(msg) => msg,
        Err(rst) => {
            tracing::debug!(peer = %peer.addr, "coap format error from an unknown address");
            reply.extend(rst.and_then(|m| encode_counted(ctx, frame, &m)));
            return None;
        }
    };
    if let Some(rst) = msg.ping_reply() {
        reply.extend(encode_counted(ctx, frame, &rst));
        return None;
    }
    msg.code.is_request().then_some(msg)
}
