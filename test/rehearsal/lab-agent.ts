/**
 * The lab's first process (PID 1 of the lab's user, network, mount and PID namespaces), started by lab.ts.
 * It builds the lab bridge, then relays TCP between the lab's network and Unix sockets, which the test process
 * outside reaches through the shared file system. It reads one JSON command per line on stdin and answers one
 * JSON line per command on stdout; when stdin ends (the test process is gone), it exits, and the kernel ends
 * every process of the lab with it.
 */
import { execFile } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { createServer, connect, type Server, type Socket } from "node:net";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { z } from "zod";

const run = promisify(execFile);

const Command = z.discriminatedUnion("op", [
  // A listener on a lab address whose connections go to a Unix socket outside (a server of the test process).
  z.object({ id: z.number(), op: z.literal("expose"), host: z.string(), port: z.number().int(), socketPath: z.string() }),
  // A Unix socket whose connections go to a lab address (for the test process to reach a machine).
  z.object({ id: z.number(), op: z.literal("forward"), socketPath: z.string(), host: z.string(), port: z.number().int() }),
  z.object({ id: z.number(), op: z.literal("close"), key: z.string() }),
]);

const Args = z.tuple([z.string().describe("bridge"), z.string().describe("gateway CIDR"), z.string().describe("host /etc mount point")]);

const servers = new Map<string, Server>();

function pipeTo(client: Socket, target: () => Socket): void {
  const upstream = target();
  client.pipe(upstream).pipe(client);
  const end = () => {
    client.destroy();
    upstream.destroy();
  };
  client.once("error", end).once("close", end);
  upstream.once("error", end).once("close", end);
}

function listen(server: Server, address: { host: string; port: number } | string): Promise<void> {
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

async function handle(command: z.infer<typeof Command>): Promise<string | undefined> {
  switch (command.op) {
    case "expose": {
      const { host, port, socketPath } = command;
      const server = createServer((client) => pipeTo(client, () => connect(socketPath)));
      await listen(server, { host, port });
      servers.set(`${host}:${port}`, server);
      return `${host}:${port}`;
    }
    case "forward": {
      const { host, port, socketPath } = command;
      const server = createServer((client) => pipeTo(client, () => connect(port, host)));
      await listen(server, socketPath);
      servers.set(socketPath, server);
      return socketPath;
    }
    case "close": {
      const server = servers.get(command.key);
      servers.delete(command.key);
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
      return undefined;
    }
  }
}

async function main(): Promise<void> {
  const [bridge, gateway, hostEtc] = Args.parse(process.argv.slice(2));
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
      const command = Command.parse(JSON.parse(line));
      id = command.id;
      return handle(command);
    })().then(
      (key) => process.stdout.write(`${JSON.stringify({ id, ok: true, key })}\n`),
      (error: unknown) => process.stdout.write(`${JSON.stringify({ id, ok: false, error: String(error) })}\n`),
    );
  });
  lines.once("close", () => process.exit(0));
}

main().catch((error: unknown) => {
  process.stderr.write(`lab agent: ${String(error)}\n`);
  process.exit(1);
});
