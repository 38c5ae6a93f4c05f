import { describe, expect, it } from "vitest";
import { withHeldServers } from "../../scaler/loop/controller.js";
import { decide } from "../../scaler/policy/decide.js";
import { NOW, policy, server, snapshot, steadyHistory } from "./policy-fixtures.js";

describe("servers an operator holds", () => {
  // Two visible servers at the maximum size, both hot: the policy wants another one.
  const maxSize = { cores: 8, ramGb: 32 };
  const hot = [
    server("a", { cpu: 0.95, memory: 0.9, meetings: 10 }, { size: maxSize }),
    server("b", { cpu: 0.95, memory: 0.9, meetings: 10 }, { size: maxSize }),
  ];
  const history = steadyHistory(3, { cpu: 0.95, memory: 0.9, cores: 16, ramGb: 64, participants: 400 });
  const launches = (held: number) =>
    decide(snapshot(hot), withHeldServers(policy({ max: 3 }), held), history, NOW).decisions.filter(
      (decision) => decision.kind === "create" || decision.kind === "start",
    );

  it("still count against the fleet's maximum: with one held, a fleet of max 3 launches nothing more", () => {
    expect(launches(0)).toHaveLength(1);
    expect(launches(1)).toEqual([]);
  });

  it("never lower the maximum below the minimum, so a held server can be replaced to keep the minimum", () => {
    expect(withHeldServers(policy({ min: 2, baseline: 2, max: 3 }), 2)).toMatchObject({ min: 2, max: 2 });
    expect(withHeldServers(policy({ max: 3 }), 0)).toEqual(policy({ max: 3 }));
  });
});
