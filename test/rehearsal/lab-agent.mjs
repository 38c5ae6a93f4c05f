/**
 * The lab's first process (PID 1 of the lab's user, network, mount and PID namespaces), started by lab.ts.
 * It builds the lab bridge, then relays TCP between the lab's network and Unix sockets, which the test process
 * outside reaches through the shared file system. It reads one JSON command per line on stdin and answers one
 * JSON line per command on stdout; when stdin ends (the test process is gone), it exits, and the kernel ends
 * every process of the lab with it.
 *
 * Plain JavaScript without dependencies: it starts in a fraction of the time a TypeScript loader takes.
 */
import { execFile } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { createServer, connect } from "node:net";
import { createInterface } from "node:readline";
import { promisify } from "node:util";

const run = promisify(execFile);

/** @type {Map<string, import("node:net").Server>} */
const servers = new Map();

/**
 * @param {import("node:net").Socket} client
 * @param {() => import("node:net").Socket} target
 */
function pipeTo(client, target) {
  const upstream = target();
  client.pipe(upstream).pipe(client);
  const end = () => {
    client.destroy();
    upstream.destroy();
  };
  client.once("error", end).once("close", end);
  upstream.once("error", end).once("close", end);
}

/**
 * @param {import("node:net").Server} server
 * @param {{ host: string, port: number } | string} address
 * @returns {Promise<void>}
 */
function listen(server, address) {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    const done = () => {
      server.off("error", reject);
      resolve();
    };
    if (typeof address === "string") server.listen(address, done);
    else server.listen(address.port, address.host, done);
  });
}

/**
 * The commands (lab.ts sends them):
 * - expose {host, port, socketPath}: a listener on a lab address whose connections go to a Unix socket outside
 *   (a server of the test process);
 * - forward {socketPath, host, port}: a Unix socket whose connections go to a lab address (for the test process to
 *   reach a machine);
 * - close {key}: ends a listener.
 * @param {{ op: string, host?: string, port?: number, socketPath?: string, key?: string }} command
 * @returns {Promise<string | undefined>}
 */
async function handle(command) {
  const text = (/** @type {unknown} */ value, /** @type {string} */ name) => {
    if (typeof value !== "string" || value === "") throw new Error(`${command.op}: ${name} must be a string`);
    return value;
  };
  const port = (/** @type {unknown} */ value) => {
    if (!Number.isInteger(value) || Number(value) < 1 || Number(value) > 65_535) throw new Error(`${command.op}: port must be 1..65535`);
    return Number(value);
  };
  switch (command.op) {
    case "expose": {
      const [host, listenPort, socketPath] = [text(command.host, "host"), port(command.port), text(command.socketPath, "socketPath")];
      const server = createServer((client) => pipeTo(client, () => connect(socketPath)));
      await listen(server, { host, port: listenPort });
      servers.set(`${host}:${listenPort}`, server);
      return `${host}:${listenPort}`;
    }
    case "forward": {
      const [host, targetPort, socketPath] = [text(command.host, "host"), port(command.port), text(command.socketPath, "socketPath")];
      const server = createServer((client) => pipeTo(client, () => connect(targetPort, host)));
      await listen(server, socketPath);
      servers.set(socketPath, server);
      return socketPath;
    }
    case "close": {
      const key = text(command.key, "key");
      const server = servers.get(key);
      servers.delete(key);
      await new Promise((resolve) => (server ? server.close(() => resolve(undefined)) : resolve(undefined)));
      return undefined;
    }
    default:
      throw new Error(`unknown command ${JSON.stringify(command.op)}`);
  }
}

async function main() {
  const [bridge, gateway, hostEtc] = process.argv.slice(2);
  if (bridge === undefined || gateway === undefined || hostEtc === undefined)
    throw new Error("usage: lab-agent.mjs <bridge> <gateway CIDR> <host /etc mount point>");
  await run("ip", ["link", "set", "lo", "up"]);
  await run("ip", ["link", "add", bridge, "type", "bridge"]);
  await run("ip", ["addr", "add", gateway, "dev", bridge]);
  await run("ip", ["link", "set", bridge, "up"]);
  // Machines see the host's /etc here, beneath their own /etc (machine-fs.ts links to it).
  await mkdir(hostEtc, { recursive: true });
  await run("mount", ["--bind", "/etc", hostEtc]);
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`);

  const lines = createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    let id = -1;
    void (async () => {
      const command = JSON.parse(line);
      id = Number(command.id);
      return handle(command);
    })().then(
      (key) => process.stdout.write(`${JSON.stringify({ id, ok: true, key })}\n`),
      (error) => process.stdout.write(`${JSON.stringify({ id, ok: false, error: String(error) })}\n`),
    );
  });
  lines.once("close", () => process.exit(0));
}

main().catch((error) => {
  process.stderr.write(`lab agent: ${String(error)}\n`);
  process.exit(1);
});
