/**
 * Runs inside a lab machine (lab.ts, Machine.serveFromOutside): listens on the machine's own address and relays each
 * connection to a Unix socket that a server of the test process answers, so an emulated service (BigBlueButton's
 * API, Scalelite) answers at the address and port where the real one would. With a certificate and key (paths as
 * the machine sees them) it terminates TLS first, as the real service's web server would.
 *
 *   node machine-relay.mjs <listen host> <listen port> <socket path> [<certificate path> <key path>]
 *
 * Plain JavaScript without dependencies, like lab-agent.mjs.
 */
import { readFileSync } from "node:fs";
import { createServer, connect } from "node:net";
import { createServer as createTlsServer } from "node:tls";

const [host, port, socketPath, certificatePath, keyPath] = process.argv.slice(2);
if (host === undefined || port === undefined || socketPath === undefined) {
  process.stderr.write("usage: machine-relay.mjs <listen host> <listen port> <socket path> [<certificate path> <key path>]\n");
  process.exit(2);
}

/** @param {import("node:net").Socket} client */
function relay(client) {
  const upstream = connect(socketPath);
  client.pipe(upstream).pipe(client);
  const end = () => {
    client.destroy();
    upstream.destroy();
  };
  client.once("error", end).once("close", end);
  upstream.once("error", end).once("close", end);
}

const server =
  certificatePath !== undefined && keyPath !== undefined
    ? createTlsServer({ cert: readFileSync(certificatePath), key: readFileSync(keyPath) }, relay)
    : createServer(relay);
server.listen(Number(port), host, () => process.stdout.write("listening\n"));
