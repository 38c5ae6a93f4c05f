import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { register } from "../../scaler/actuator/registration.js";
import type { FleetState } from "../../scaler/fleet/state.js";
import { createLogger } from "../../scaler/log.js";
import { BbbClient } from "../../scaler/signals/bbb.js";
import { ScaleliteClient } from "../../scaler/signals/scalelite.js";
import { Emulator } from "../emulator/emulator.js";

/** The actuator's side of the warm pool (scaler/policy/phases/warmPool.ts): installed, then stopped, never enabled. */
describe("registration of a server created for the warm pool", () => {
  let emulator: Emulator;

  beforeAll(async () => {
    emulator = await Emulator.start({ clock: { kind: "manual" } });
  });

  afterAll(async () => {
    await emulator.stop();
  });

  it("stops a warm-pool server once its BBB API answers, registered but disabled, and enables an ordinary one", async () => {
    const warm = emulator.addRunningServer({ name: "bbb-7", cores: 4, ram: 16384 });
    const ordinary = emulator.addRunningServer({ name: "bbb-8", cores: 4, ram: 16384 });
    const template = { env: "local", fleet: "bbb", domain: "bbb.example.org" } as unknown as FleetState["desired"];
    const state: FleetState = {
      desired: {
        ...template,
        servers: [
          { name: "bbb-7", size: { cores: 4, ramGb: 16 }, power: "running", image: "bbb-3.0-r2" },
          { name: "bbb-8", size: { cores: 4, ramGb: 16 }, power: "running", image: "bbb-3.0-r2" },
        ],
      },
      servers: {
        "bbb-7": { phase: "booting", since: 0, scaleliteId: null, bootedAt: null, resizedAt: null, warm: true },
        "bbb-8": { phase: "booting", since: 0, scaleliteId: null, bootedAt: null, resizedAt: null },
      },
      nextIndex: 9,
      updateInFlight: null,
    };
    const addresses = { "bbb-7": { id: warm.id, publicIp: "192.0.2.7" }, "bbb-8": { id: ordinary.id, publicIp: "192.0.2.8" } };
    const scalelite = new ScaleliteClient({ baseUrl: emulator.scaleliteApiUrl, secret: emulator.scalelite.secret });
    const audits: { kind: string; server?: string }[] = [];
    const report = { registered: [] as string[] };
    await register(
      {
        fleet: "bbb",
        defaultSize: { cores: 4, ramGb: 16 },
        bbbUrl: ({ id }) => emulator.bbbUrl(id),
        bbbSecretOf: () => emulator.cloud.bbbSecret,
      },
      {
        scalelite,
        bbb: (baseUrl) => new BbbClient({ baseUrl, secret: emulator.cloud.bbbSecret, algorithm: "sha1" }),
        audit: async (entry, server) => {
          audits.push({ kind: entry.kind, ...(server === undefined ? {} : { server }) });
        },
        now: () => 1_000,
        log: createLogger("test", "silent"),
      },
      addresses,
      state,
      new Map(),
      report,
    );

    expect(report.registered.sort()).toEqual(["bbb-7", "bbb-8"]);
    expect(state.desired.servers.find((server) => server.name === "bbb-7")?.power).toBe("stopped");
    expect(state.servers["bbb-7"]).toMatchObject({ phase: "stopped", bootedAt: null });
    expect(state.servers["bbb-7"]?.warm).toBeUndefined();
    expect(state.servers["bbb-8"]).toMatchObject({ phase: "active", bootedAt: 1_000 });
    const states = Object.fromEntries((await scalelite.getServers()).map((server) => [server.url, server.state]));
    expect(states[emulator.bbbUrl(warm.id)]).toBe("disabled");
    expect(states[emulator.bbbUrl(ordinary.id)]).toBe("enabled");
    expect(audits).toContainEqual({ kind: "warm", server: "bbb-7" });
  });
});
