import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { parseEnvironmentConfig, StackConfigError } from "../../infra/config.js";
import { renderControlNodeScalerSettings } from "../../infra/controlNode.js";
import { fleetSettingsSchema } from "../../scaler/settings.js";
import { configMapFromStackFile } from "../harness/stackFile.js";

const STACK_FILE = new URL("../../stacks/Pulumi.local.yaml", import.meta.url).pathname;
const PLACEMENT = { cloud: "ionos", region: "de/fra", ionos: { datacenterId: "dc-1", lanId: 1 } } as const;

/** The fleet settings the control node's scaler reads from the scaler.yaml a stack renders. */
function renderedFleet(raw: Record<string, string>, secretKeys: Set<string>) {
  const config = parseEnvironmentConfig("local", raw, secretKeys);
  const yaml = renderControlNodeScalerSettings("local", config, "198.18.0.2", PLACEMENT);
  return fleetSettingsSchema.parse((parse(yaml) as { fleet: unknown }).fleet);
}

describe("the scaler's loop timings come from the stack (confscale:scaler)", () => {
  it("renders the local stack's 15 s period and 45 s rate window into scaler.yaml", () => {
    const { raw, secretKeys } = configMapFromStackFile(STACK_FILE);
    const fleet = renderedFleet(raw, secretKeys);
    expect(fleet.intervalSeconds).toBe(15);
    expect(fleet.prometheusRateWindow).toBe("45s");
  });

  it("leaves the scaler's defaults (60 s, 2m) to a stack that sets none", () => {
    const { raw, secretKeys } = configMapFromStackFile(STACK_FILE);
    delete raw["confscale:scaler"];
    const fleet = renderedFleet(raw, secretKeys);
    expect(fleet.intervalSeconds).toBe(60);
    expect(fleet.prometheusRateWindow).toBe("2m");
  });

  it("refuses a rate window Prometheus would not read, naming the key", () => {
    const { raw, secretKeys } = configMapFromStackFile(STACK_FILE);
    raw["confscale:scaler"] = JSON.stringify({ prometheusRateWindow: "45 seconds" });
    expect(() => parseEnvironmentConfig("local", raw, secretKeys)).toThrow(StackConfigError);
    expect(() => parseEnvironmentConfig("local", raw, secretKeys)).toThrow(/confscale:scaler\.prometheusRateWindow/);
  });
});
