// An LwM2M device on the client of the npm package lwm2m-node-lib (Telefonica), driven
// line by line from stdin by tests/python/test_lwm2m.py:
//   node lwm2m_client.js <host> <port> <endpoint>
// It serves /3/0 (Device) and /3303/0 (Temperature); it prints one JSON line per event
// (registered, write, execute, updated, deregistered) and reads commands from stdin:
//   set <objectUri> <resourceId> <value> | update | deregister
'use strict';

const readline = require('readline');
const client = require('lwm2m-node-lib').client;

const [host, port, endpoint] = process.argv.slice(2);
const say = (event) => process.stdout.write(JSON.stringify(event) + '\n');

client.init({
  client: {
    lifetime: '300',
    version: '1.0',
    logLevel: 'FATAL',
    observe: { period: 200 },
    ipProtocol: 'udp4',
    serverProtocol: 'udp4',
    formats: [{ name: 'lightweightm2m/text', value: 1541 }],
    writeFormat: 'lightweightm2m/text',
  },
});

function setup(done) {
  client.registry.create('/3/0', () => {
    client.registry.setResource('/3/0', '0', 'Telefonica', () => {
      client.registry.setResource('/3/0', '9', '87', () => {
        client.registry.create('/3303/0', () => {
          client.registry.setResource('/3303/0', '5700', '21.5', done);
        });
      });
    });
  });
}

let device = null;

setup(() => {
  client.register(host, Number(port), '', endpoint, (error, info) => {
    if (error) {
      say({ event: 'error', error: String(error) });
      process.exit(1);
    }
    device = info;
    client.setHandler(info.serverInfo, 'write', (objectType, objectId, resourceId, value, callback) => {
      say({ event: 'write', path: `/${objectType}/${objectId}/${resourceId}`, value: String(value) });
      callback(null);
    });
    client.setHandler(info.serverInfo, 'execute', (objectType, objectId, resourceId, args, callback) => {
      say({ event: 'execute', path: `/${objectType}/${objectId}/${resourceId}`, args: String(args) });
      callback(null);
    });
    say({ event: 'registered', location: info.location });
  });
});

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const [command, ...args] = line.trim().split(' ');
  if (command === 'set') {
    const [uri, id, value] = args;
    client.registry.setResource(uri, id, value, () => say({ event: 'set' }));
  } else if (command === 'update') {
    client.update(device, (error) => say({ event: error ? 'error' : 'updated', error: String(error || '') }));
  } else if (command === 'deregister') {
    client.unregister(device, (error) => {
      say({ event: error ? 'error' : 'deregistered', error: String(error || '') });
      process.exit(0);
    });
  }
});
