// `pulumi preview` of an Oracle Cloud environment, with Pulumi's mocks in preview mode: the control node's address is
// unknown until `up`, and the workers' security rules must be listed all the same.
import * as settings from "@pulumi/pulumi/runtime/settings.js";
import { describe, expect, it } from "vitest";
import { environmentConfigSchema } from "../../infra/config.js";
import { declareEnvironment } from "../../infra/environment.js";
import { workerFirewallRules } from "../../infra/firewall.js";
import { useRecordingMocks } from "./pulumiMocks.js";

const declared = useRecordingMocks({ stack: "ocipreview", dryRun: true });

describe("preview of an Oracle Cloud environment", () => {
  it("lists every worker security rule before the control node exists, the node-exporter rule among them", async () => {
    const config = environmentConfigSchema.parse({
      cloud: "oci",
      region: "eu-frankfurt-1",
      domain: "bbb.example.org",
      adminCidrs: ["203.0.113.0/24"],
      sshPublicKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA admin"],
      scaleliteSecret: "s".repeat(40),
      grafanaAdminPassword: "grafana-admin-pw-1",
      nodeExporterPassword: "node-exporter-pw-1",
      deployScaler: false,
      workers: { min: 1, max: 4, baseline: 1, defaultSize: { cores: 4, ramGb: 8 }, maxSize: { cores: 8, ramGb: 16 } },
      oci: {
        compartmentId: "ocid1.compartment.oc1..aaaa",
        availabilityDomain: "Uocm:EU-FRANKFURT-1-AD-1",
        imageId: "ocid1.image.oc1..bbbb",
        workerImageId: "ocid1.image.oc1..cccc",
      },
    });
    const outputs = declareEnvironment("ocipv", config);
    // Every registration the program started has reached the engine (the SDK's own drain before it disconnects).
    await (settings as unknown as { waitForRPCs: () => Promise<void> }).waitForRPCs();
    expect(declared.some((resource) => resource.type === "oci:Core/instance:Instance")).toBe(true);
    expect(await (outputs.controlNodeAddress as unknown as { isKnown: Promise<boolean> }).isKnown, "the address is known").toBe(false);
    const workerRules = declared.filter(
      (resource) =>
        resource.type === "oci:Core/networkSecurityGroupSecurityRule:NetworkSecurityGroupSecurityRule" &&
        resource.name.startsWith("ocipv-worker-"),
    );
    const expected = workerFirewallRules(config.adminCidrs, "192.0.2.1").flatMap((rule) => rule.sourceCidrs).length;
    expect(workerRules).toHaveLength(expected);
    expect(workerRules.map((resource) => resource.name)).toContain("ocipv-worker-tcp-9100-0");
  });
});
