/**
 * Small TCP programs that tests run inside lab machines with the machine's own `node`: a listener that stands in
 * for a service (sshd, …) and answers with who it is and who called, and a client that reports whether a port
 * answered or was refused.
 */
import type { LabProcess, Machine } from "./lab.js";

const LISTENER = `
const net = require("node:net");
const os = require("node:os");
const port = Number(process.argv[1]);
net.createServer((socket) => socket.end(os.hostname() + " " + socket.remoteAddress + "\\n")).listen(port, "0.0.0.0", () => console.log("listening"));
`;

const CLIENT = `
const net = require("node:net");
const [host, port, timeoutMs] = process.argv.slice(1);
const socket = net.connect({ host, port: Number(port) });
let data = "";
socket.setTimeout(Number(timeoutMs), () => { console.log("timeout"); process.exit(0); });
socket.on("data", (chunk) => (data += chunk));
socket.on("end", () => { console.log("answered " + data.trim()); process.exit(0); });
socket.on("error", (error) => { console.log(error.code === "ECONNREFUSED" ? "refused" : "error " + error.code); process.exit(0); });
`;

/** A TCP listener on every address of `machine` at `port`, answering "<hostname> <caller's address>". */
export async function startListener(machine: Machine, port: number): Promise<LabProcess> {
  const listener = machine.run(process.execPath, ["-e", LISTENER, String(port)]);
  await machine.waitForPort(port);
  return listener;
}

export type ProbeResult =
  { kind: "answered"; from: string; caller: string } | { kind: "refused" } | { kind: "timeout" } | { kind: "error"; code: string };

/**
 * Connects from `machine` (or the lab's root namespace) to host:port. A firewall in this lab rejects, so a closed port
 * is "refused" at once; the timeout only bounds a test that would otherwise hang.
 */
export async function probe(from: Pick<Machine, "exec">, host: string, port: number, timeoutMs = 10_000): Promise<ProbeResult> {
  const { stdout } = await from.exec(process.execPath, ["-e", CLIENT, host, String(port), String(timeoutMs)]);
  const [kind, first, second] = stdout.trim().split(/\s+/);
  if (kind === "answered") return { kind, from: first ?? "", caller: second ?? "" };
  if (kind === "refused" || kind === "timeout") return { kind };
  return { kind: "error", code: first ?? stdout };
}
