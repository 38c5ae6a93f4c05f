// A Jitsi group's fleet stack through the Automation API and the real engine, against the emulated IONOS cloud: each
// bridge's sidecar key is generated once by the dynamic resource, reaches that bridge's user data, is exported for the
// scaler's key server, stays the same on the next `up`, and goes with its bridge.
import { createPublicKey } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import type { FleetSpec } from "../../infra/fleet.js";
import { parseJitsiWorkerKeyId } from "../../infra/workerCredentials.js";
import { FleetStack } from "../../scaler/actuator/fleetStack.js";
import { Emulator } from "../emulator/emulator.js";
import { emulatedFleetTemplate, emulatedStackSettings } from "../harness/fleetRig.js";
import { createPulumiSandbox, type PulumiSandbox } from "../harness/pulumi.js";

interface Exported {
  sidecarKey?: { keyId: string; publicKeyPem: string };
}

describe("a Jitsi group's fleet stack with the real engine", () => {
  let emulator: Emulator;
  let sandbox: PulumiSandbox;
  let fleet: FleetStack;
  let spec: FleetSpec;

  beforeAll(async () => {
    emulator = await Emulator.start({ timings: { requestQueuedMs: 20, requestRunningMs: 100, bootMs: 200 } });
    sandbox = await createPulumiSandbox();
    fleet = await FleetStack.open({
      ...emulatedStackSettings(emulator, sandbox, "e2ej"),
      jitsiSecrets: { jitsiJvbPassword: "jvb-xmpp-password" },
    });
    spec = {
      ...emulatedFleetTemplate(emulator, "e2ej", "jitsi-bridges"),
      workload: {
        kind: "jitsi",
        group: "bridges",
        component: "JVB",
        signaling: { xmppDomain: "meet.example.org", xmppHost: "meet.example.org" },
      },
      servers: ["jitsi-bridges-1", "jitsi-bridges-2"].map((name) => ({
        name,
        size: { cores: 2, ramGb: 4 },
        power: "running",
        image: "ubuntu:22.04",
      })),
    };
  });

  afterAll(async () => {
    await emulator?.stop();
    await sandbox?.cleanup();
  });

  /** Each emulated machine's user data, by name, as its boot volume holds it. */
  function userDataByName(): Map<string, string> {
    const found = new Map<string, string>();
    for (const datacenter of emulator.cloud.datacenters.values()) {
      for (const server of datacenter.servers.values()) {
        const userData = datacenter.volumes.get(server.volumeIds[0] ?? "")?.properties.userData;
        if (typeof userData === "string") found.set(emulator.serverView(server).name, Buffer.from(userData, "base64").toString("utf8"));
      }
    }
    return found;
  }

  const file = (userData: string, path: string) =>
    (parse(userData) as { write_files: { path: string; content: string }[] }).write_files.find((entry) => entry.path === path)?.content ??
    "";

  it("generates each bridge's key once, hands it to that bridge, exports its public half, and keeps it", async () => {
    const created = await fleet.up(spec);
    expect(created.steps.filter((step) => step.op === "create" && step.type.endsWith("JitsiSidecarKey"))).toHaveLength(2);
    const exported = (await fleet.serverAddresses()) as Record<string, Exported>;
    const userData = userDataByName();
    const keys = new Set<string>();
    for (const server of spec.servers) {
      const text = userData.get(server.name) ?? "";
      const env = file(text, "/etc/confscale/jitsi-sidecar.env");
      const kid = /^ASAP_JWT_KID=(.+)$/m.exec(env)?.[1];
      expect(kid).toBe(exported[server.name]?.sidecarKey?.keyId);
      expect(parseJitsiWorkerKeyId(kid ?? "")).toMatchObject({ fleet: "jitsi-bridges", server: server.name });
      const privateKeyPem = file(text, "/etc/confscale/jitsi-sidecar-key.pem");
      const publicKeyPem = createPublicKey(privateKeyPem).export({ format: "pem", type: "spki" }).toString();
      expect(publicKeyPem).toBe(exported[server.name]?.sidecarKey?.publicKeyPem);
      keys.add(publicKeyPem);
      expect(file(text, "/etc/jitsi/videobridge/jvb.conf")).toContain('PASSWORD = "jvb-xmpp-password"');
    }
    expect(keys.size).toBe(2);

    // The next `up` of the same spec changes nothing: the key, and so the user data, are the state's.
    expect(await fleet.preview(spec)).toEqual({ same: 2 + 2 + 1 });

    // A bridge taken out of the spec takes its key with it.
    const one = { ...spec, servers: spec.servers.slice(0, 1) };
    const shrunk = await fleet.up(one);
    expect(
      shrunk.steps
        .filter((step) => step.op === "delete")
        .map((step) => step.name)
        .sort(),
    ).toEqual(["jitsi-bridges-2", "jitsi-bridges-2-sidecar-key"]);
    const after = (await fleet.serverAddresses()) as Record<string, Exported>;
    expect(after["jitsi-bridges-1"]?.sidecarKey).toEqual(exported["jitsi-bridges-1"]?.sidecarKey);
    await fleet.up({ ...spec, servers: [] });
  });
});
