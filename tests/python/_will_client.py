"""A client that connects with a will message, prints CONNECTED and then waits to be
killed, so that its socket is closed by the kernel without an MQTT DISCONNECT.

Usage: python _will_client.py PORT PROTOCOL(4|5) CLIENT_ID WILL_TOPIC WILL_PAYLOAD
"""

import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def main() -> None:
    port, protocol, client_id, topic, payload = sys.argv[1:6]
    protocol = int(protocol)
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        clean_session=None if protocol == mqtt.MQTTv5 else True,
        reconnect_on_failure=False,
    )
    will_props = None
    if protocol == mqtt.MQTTv5:
        will_props = Properties(PacketTypes.WILLMESSAGE)
        will_props.UserProperty = [("origin", "will")]
        will_props.ContentType = "text/plain"
    c.will_set(topic, payload, qos=1, retain=False, properties=will_props)
    done = threading.Event()

    def on_connect(client, userdata, flags, reason_code, properties):
        print("CONNECTED" if not reason_code.is_failure else f"REFUSED {reason_code}", flush=True)

    def on_disconnect(client, userdata, flags, reason_code, properties):
        print(f"DISCONNECTED {reason_code}", flush=True)
        done.set()

    c.on_connect = on_connect
    c.on_disconnect = on_disconnect
    c.connect("127.0.0.1", int(port), keepalive=60)
    c.loop_start()
    # Wait to be killed (bounded, in case the test harness goes away).
    done.wait(60)


if __name__ == "__main__":
    main()
