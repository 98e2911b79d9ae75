"""Durable state across a restart of the real `junction start` process, seen by paho-mqtt
(2.x) and mosquitto_sub/mosquitto_pub: retained messages and persistent sessions with
their queued QoS 1/2 messages survive SIGKILL (durable_sessions.commit_before_ack) and a
clean stop (SIGTERM, batched commits).

Each test runs its own broker on its own data directory, restarted on the same one.
"""

from __future__ import annotations

import subprocess

import paho.mqtt.client as mqtt
import pytest

from junction_harness import HOST, TIMEOUT, PacketTypes, props, start_broker, unique

# Only the commits made before acknowledging: no periodic commit to help.
BEFORE_ACK = 'durable_sessions { commit_before_ack = true, commit_interval = "1h" }'

STOPS = [
    pytest.param("kill", BEFORE_ACK, id="sigkill-commit-before-ack"),
    pytest.param("term", "", id="sigterm-batched"),
]


def halt(broker, how: str) -> None:
    if how == "kill":
        broker.proc.kill()
        broker.proc.wait(timeout=TIMEOUT)
        if broker._reader is not None:
            broker._reader.join(timeout=TIMEOUT)
    else:
        broker.stop()
        assert broker.proc.returncode == 0, broker.stderr_tail()


@pytest.mark.parametrize("how,config", STOPS)
@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5], ids=["v311", "v5"])
def test_paho_persistent_session_and_retained_survive_a_restart(
    tmp_path, clients, how, config, protocol
):
    topic = unique("persist/paho")
    cid = unique("persist-sub")
    v5 = protocol == mqtt.MQTTv5
    expiry = props(PacketTypes.CONNECT, SessionExpiryInterval=3600) if v5 else None
    broker = start_broker(tmp_path, config=config, ws=False)
    try:
        sub = clients(broker.tcp, protocol=protocol, client_id=cid, clean_session=False)
        sub.connect(clean_start=True, properties=expiry)
        sub.subscribe(f"{topic}/#", 2)
        sub.disconnect()

        pub = clients(broker.tcp, protocol=protocol).connect()
        sent = []
        for i in range(50):
            qos = 1 + i % 2
            payload = f"q{qos}-{i}".encode()
            pub.publish(f"{topic}/q{qos}", payload, qos=qos)  # acknowledged: durable
            sent.append(payload)
        pub.publish(f"{topic}/retained", b"kept", qos=1, retain=True)
        pub.close()
    finally:
        halt(broker, how)

    broker = start_broker(tmp_path, config=config, ws=False)
    try:
        again = clients(broker.tcp, protocol=protocol, client_id=cid, clean_session=False)
        again.connect(clean_start=False, properties=expiry)
        assert again.session_present, "the session did not survive the restart"
        got = again.expect(len(sent) + 1, timeout=10)
        payloads = [m.payload for m in got if m.topic != f"{topic}/retained"]
        # QoS 1 may come twice after a crash; QoS 2 exactly once; none missing.
        assert set(payloads) == set(sent)
        q2 = [p for p in payloads if p.startswith(b"q2-")]
        assert len(q2) == len(set(q2)), "a QoS 2 message arrived twice"

        reader = clients(broker.tcp, protocol=protocol).connect()
        reader.subscribe(f"{topic}/retained", 1)
        [m] = reader.expect(1)
        assert (m.payload, m.retain) == (b"kept", True)
    finally:
        broker.stop()


def test_mosquitto_sub_persistent_session_survives_sigkill(tmp_path):
    """mosquitto_sub -c (clean session off) subscribes and leaves; mosquitto_pub sends
    QoS 1 messages; the broker is killed; after the restart mosquitto_sub -c gets them."""
    topic = unique("persist/mosq")
    cid = unique("mosq-persist")
    broker = start_broker(tmp_path, config=BEFORE_ACK, ws=False)
    port = str(broker.tcp)
    try:
        # Subscribe once with a persistent session: -E exits right after the SUBACK.
        subprocess.run(
            ["mosquitto_sub", "-h", HOST, "-p", port, "-i", cid, "-c", "-q", "1",
             "-t", topic, "-E"],
            check=True, timeout=TIMEOUT,
        )
        for i in range(5):
            subprocess.run(
                ["mosquitto_pub", "-h", HOST, "-p", port, "-q", "1", "-t", topic,
                 "-m", f"m{i}"],
                check=True, timeout=TIMEOUT,
            )
    finally:
        halt(broker, "kill")
    broker = start_broker(tmp_path, config=BEFORE_ACK, ws=False)
    try:
        out = subprocess.run(
            ["mosquitto_sub", "-h", HOST, "-p", str(broker.tcp), "-i", cid, "-c", "-q", "1",
             "-t", topic, "-C", "5", "-W", "10"],
            check=True, timeout=15, capture_output=True, text=True,
        )
        assert out.stdout.split() == [f"m{i}" for i in range(5)]
    finally:
        broker.stop()
