import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** A webhook receiver on loopback: answers the first `failFirst` POSTs 503 (to be retried), then 200; keeps every body. */
export async function startWebhookReceiver(
  failFirst: number,
): Promise<{ url: string; bodies: unknown[]; posts: () => number; stop: () => Promise<void> }> {
  const bodies: unknown[] = [];
  let posts = 0;
  const server: Server = createServer((request, response) => {
    let text = "";
    request.setEncoding("utf8");
    request.on("data", (chunk: string) => (text += chunk));
    request.on("end", () => {
      posts += 1;
      if (posts <= failFirst) return void response.writeHead(503).end();
      bodies.push(JSON.parse(text));
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/alerts`,
    bodies,
    posts: () => posts,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
