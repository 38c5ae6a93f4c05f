import { IncomingMessage } from "node:http";
import { Socket } from "node:net";
import type { Context } from "hono";
import { describe, expect, it } from "vitest";
import { readJsonValue } from "../../scaler/api/http.js";

/** A handler's context under @hono/node-server, as far as the body reader looks at it. */
function contextOf(incoming: IncomingMessage): Context {
  return { env: { incoming } } as unknown as Context;
}

describe("reading a request body", () => {
  it("fails, instead of waiting forever, when the client went away before the handler read the body", async () => {
    const incoming = new IncomingMessage(new Socket());
    incoming.destroy();
    await expect(readJsonValue(contextOf(incoming), 1024)).rejects.toThrow(/aborted/);
  });

  it("fails when the request closes before its body ends", async () => {
    const incoming = new IncomingMessage(new Socket());
    const reading = readJsonValue(contextOf(incoming), 1024);
    incoming.push('{"instanceId":');
    incoming.emit("close");
    await expect(reading).rejects.toThrow(/aborted/);
  });

  it("reads a body that arrives in pieces", async () => {
    const incoming = new IncomingMessage(new Socket());
    const reading = readJsonValue(contextOf(incoming), 1024);
    incoming.push('{"instanceId":');
    incoming.push('"jvb-1"}');
    incoming.push(null);
    await expect(reading).resolves.toEqual({ instanceId: "jvb-1" });
  });
});
