import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { signedQuery } from "../emulator/checksum.js";
import { Emulator } from "../emulator/emulator.js";

const POLL_MS = 60_000;

/**
 * Steering through Scalelite's `load_multiplier` (scaler/policy/placement.ts): Scalelite's poller sets a server's
 * load to its participants times the multiplier (lib/tasks/poll.rake in blindsidenetworks/scalelite) and a new
 * meeting goes to the least load, so a server steered to twice its share takes a new class only once the others
 * carry twice its participants.
 */
describe("Scalelite emulator: placement honours the load multiplier", () => {
  let emulator: Emulator;
  const ids = new Map<string, string>();

  beforeAll(async () => {
    emulator = await Emulator.start({ clock: { kind: "manual" }, scalelitePollMs: POLL_MS });
  });

  afterAll(async () => {
    await emulator.stop();
  });

  const call = (action: string, body: unknown) =>
    fetch(`${emulator.scaleliteApiUrl}/${action}?${signedQuery(action, {}, emulator.scalelite.secret, "sha256")}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  const placedOn = async (participants: number): Promise<string> => {
    const response = await fetch(`${emulator.url}/_control/meetings`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ participants, videos: 0, durationMs: 60 * 60_000 }),
    });
    expect(response.status).toBe(201);
    return z.object({ scaleliteServerId: z.string() }).parse(await response.json()).scaleliteServerId;
  };

  it("sends new meetings away from a server steered to twice its share until the others carry twice its participants", async () => {
    for (const name of ["cams", "ears"]) {
      const id = emulator.addRunningServer({ name, cores: 4, ram: 16384 }).id;
      const added = z
        .object({ id: z.string() })
        .parse(await (await call("addServer", { server: { url: emulator.bbbUrl(id), secret: emulator.cloud.bbbSecret } })).json());
      ids.set(name, added.id);
      expect((await call("updateServer", { id: added.id, server: { state: "enable" } })).status).toBe(200);
    }
    emulator.clock.advance(POLL_MS);
    const cams = ids.get("cams")!;
    const ears = ids.get("ears")!;
    // One class of 20 on each, then the policy steers `cams` (its cameras cost more CPU) to a multiplier of 2.
    expect(new Set([await placedOn(20), await placedOn(20)])).toEqual(new Set([cams, ears]));
    expect((await call("updateServer", { id: cams, server: { load_multiplier: 2 } })).status).toBe(200);
    // `cams` reads 40, `ears` 20: the next class goes to `ears`, though both had one class of 20.
    expect(await placedOn(20)).toBe(ears);
    // Steered back to its share, `cams` reads 20 against 40: it takes the next one.
    expect((await call("updateServer", { id: cams, server: { load_multiplier: 1 } })).status).toBe(200);
    expect(await placedOn(20)).toBe(cams);
  });
});
