import { readFileSync } from "node:fs";
import { createServer } from "node:net";

/** Where the kernel picks ports for outgoing connections and for `listen(0)`. */
function ephemeralRange(): { low: number; high: number } {
  try {
    const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && Number.isInteger(high)) {
      return { low: low as number, high: high as number };
    }
  } catch {
    // Not Linux: fall through to the IANA dynamic range.
  }
  return { low: 49152, high: 65535 };
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/**
 * A TCP port on 127.0.0.1 that was free a moment ago, for a child process to listen on.
 *
 * Chosen below the ephemeral range: a port the OS handed out for `listen(0)` goes back to the pool it also draws
 * outgoing connections' local ports from, so in a busy suite a connection could take it before the child binds it.
 * Chosen above 10080, the highest of the ports `fetch()` refuses ("bad port", https://fetch.spec.whatwg.org/#port-blocking).
 */
export async function freeLoopbackPort(): Promise<number> {
  const { low } = ephemeralRange();
  const floor = 10_081;
  const span = Math.max(low - floor, 1_000);
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const port = floor + Math.floor(Math.random() * span);
    if (port < 65_536 && (await canListen(port))) {
      return port;
    }
  }
  throw new Error(`found no free loopback port between ${floor} and ${floor + span} after 50 tries`);
}
