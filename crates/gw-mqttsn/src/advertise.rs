//! The ADVERTISE broadcaster (MQTT-SN 1.2 §5.4.1, §6.1; EMQX `broadcast = true`, reference
//! §5.2 "Broadcast"): ADVERTISE(GwId, Duration) when the listener starts and then every
//! period, to the IPv4 broadcast address of every local interface on the listener's port.
//!
//! It is sent from the listener's own socket, so a client that hears it learns the address
//! and port it must CONNECT to from the datagram's source (EMQX sends from an ephemeral
//! socket to port 1884, which only works for the default listener). Duration is the period
//! in seconds, as §5.4.1 defines it (EMQX writes 900 000 ms truncated to 16 bits,
//! reference §7.2 #10).

use crate::protocol::SnProtocol;
use junction_codec_mqttsn::Message;
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Shortest period accepted (a zero period would spin).
const MIN_PERIOD: Duration = Duration::from_millis(10);

/// The ADVERTISE message for gateway `gw_id` sent every `period`.
pub(crate) fn advertise_message(gw_id: u8, period: Duration) -> Message {
    Message::Advertise {
        gw_id,
        duration: period.as_secs().min(u16::MAX as u64) as u16,
    }
}

/// Broadcast destinations for a socket bound to `local`: the broadcast address of every
/// IPv4 interface (only the bound address's interface when the socket is bound to one
/// address), on the listener's port.
pub(crate) fn broadcast_destinations(
    local: SocketAddr,
    interfaces: &[if_addrs::Interface],
) -> Vec<SocketAddr> {
    let bound = match local.ip() {
        IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
        IpAddr::V4(_) => None,
        // An IPv6 socket bound to `::` may still reach IPv4 peers (dual stack); one bound
        // to a particular IPv6 address cannot broadcast.
        IpAddr::V6(ip) if ip.is_unspecified() => None,
        IpAddr::V6(_) => return Vec::new(),
    };
    let set: BTreeSet<SocketAddr> = interfaces
        .iter()
        .filter_map(|i| match &i.addr {
            if_addrs::IfAddr::V4(v4) if bound.is_none_or(|b| b == v4.ip) => v4.broadcast,
            _ => None,
        })
        .map(|b| SocketAddr::new(IpAddr::V4(b), local.port()))
        .collect();
    set.into_iter().collect()
}

/// Where this listener's ADVERTISE goes now (interfaces are read each time: they change).
fn destinations(shared: &SnProtocol, local: SocketAddr) -> Vec<SocketAddr> {
    if let Some(to) = &shared.settings.advertise_to {
        return to.clone();
    }
    match if_addrs::get_if_addrs() {
        Ok(interfaces) => broadcast_destinations(local, &interfaces),
        Err(e) => {
            tracing::warn!(error = %e, "mqtt-sn ADVERTISE: cannot list the network interfaces");
            Vec::new()
        }
    }
}

/// Send ADVERTISE now and every period until the listener stops (the task is aborted).
pub(crate) async fn run(shared: Arc<SnProtocol>, socket: Arc<tokio::net::UdpSocket>) {
    if let Err(e) = socket.set_broadcast(true) {
        tracing::warn!(error = %e, "mqtt-sn ADVERTISE: cannot enable broadcast on the socket");
    }
    let local = match socket.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "mqtt-sn ADVERTISE: no local address");
            return;
        }
    };
    let period = shared.settings.advertise_interval.max(MIN_PERIOD);
    let msg = advertise_message(shared.settings.gateway_id, period);
    loop {
        let to = destinations(&shared, local);
        if to.is_empty() {
            tracing::debug!(%local, "mqtt-sn ADVERTISE: no broadcast address to send to");
        }
        if let Some(datagram) = shared.encode(&msg) {
            for addr in to {
                match socket.send_to(&datagram, addr).await {
                    Ok(n) => shared.ctx.metrics.bytes_sent.add(n as u64),
                    Err(e) => tracing::debug!(%addr, error = %e, "mqtt-sn ADVERTISE send failed"),
                }
            }
        }
        // The next one no sooner than Duration after this one (§5.4.1).
        tokio::time::sleep(period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use if_addrs::{IfAddr, Ifv4Addr, Interface};
    use std::net::Ipv4Addr;

    fn v4(name: &str, ip: [u8; 4], broadcast: Option<[u8; 4]>) -> Interface {
        Interface {
            name: name.into(),
            addr: IfAddr::V4(Ifv4Addr {
                ip: Ipv4Addr::from(ip),
                netmask: Ipv4Addr::new(255, 255, 255, 0),
                prefixlen: 24,
                broadcast: broadcast.map(Ipv4Addr::from),
            }),
            index: None,
            oper_status: if_addrs::IfOperStatus::Up,
            is_p2p: false,
            #[cfg(windows)]
            adapter_name: String::new(),
        }
    }

    fn interfaces() -> Vec<Interface> {
        vec![
            v4("lo", [127, 0, 0, 1], None),
            v4("eth0", [192, 168, 1, 10], Some([192, 168, 1, 255])),
            v4("eth1", [10, 0, 0, 7], Some([10, 0, 0, 255])),
            v4("eth1:alias", [10, 0, 0, 8], Some([10, 0, 0, 255])),
        ]
    }

    #[test]
    fn advertise_duration_is_the_period_in_seconds() {
        assert_eq!(
            advertise_message(3, Duration::from_secs(900)),
            Message::Advertise {
                gw_id: 3,
                duration: 900
            }
        );
        assert_eq!(
            advertise_message(1, Duration::from_secs(100_000)),
            Message::Advertise {
                gw_id: 1,
                duration: u16::MAX
            }
        );
    }

    #[test]
    fn a_wildcard_socket_broadcasts_on_every_ipv4_interface_once() {
        let got = broadcast_destinations("0.0.0.0:1884".parse().unwrap(), &interfaces());
        let want: Vec<SocketAddr> = vec![
            "10.0.0.255:1884".parse().unwrap(),
            "192.168.1.255:1884".parse().unwrap(),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn a_socket_bound_to_one_address_broadcasts_on_its_interface_only() {
        let got = broadcast_destinations("192.168.1.10:1999".parse().unwrap(), &interfaces());
        assert_eq!(got, vec!["192.168.1.255:1999".parse().unwrap()]);
        assert!(
            broadcast_destinations("127.0.0.1:1884".parse().unwrap(), &interfaces()).is_empty()
        );
        assert!(broadcast_destinations("[::1]:1884".parse().unwrap(), &interfaces()).is_empty());
    }
}
