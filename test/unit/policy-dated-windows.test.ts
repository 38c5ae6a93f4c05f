import { describe, expect, it } from "vitest";
import { decide } from "../../scaler/policy/decide.js";
import { minimumAt, type DatedWindow } from "../../scaler/policy/timeWindows.js";
import type { Decision } from "../../scaler/policy/types.js";
import { EMPTY_HISTORY, MINUTE, NOW, policy, server, snapshot, steadyHistory, stoppedServer } from "./policy-fixtures.js";

const IDLE = { cpu: 0.05, memory: 0.2 };
const kinds = (decisions: Decision[]) =>
  decisions.map((decision) => `${decision.kind}${decision.server === undefined ? "" : ` ${decision.server}`}`);
const exam = (from: number, to: number, min: number): DatedWindow => ({ name: "exam", from, to, min });

describe("policy: dated windows", () => {
  it("starts stopped servers up to an open dated window's minimum", () => {
    const servers = [server("a"), stoppedServer("b"), stoppedServer("c"), stoppedServer("d")];
    const outcome = decide(
      snapshot(servers),
      { ...policy(), datedWindows: [exam(NOW - 30 * MINUTE, NOW + 3 * 60 * MINUTE, 3)] },
      EMPTY_HISTORY,
      NOW,
    );
    expect(kinds(outcome.decisions)).toEqual(["start b", "start c"]);
    expect(outcome.decisions[0]?.inputs.minimum).toBe(3);
    // Without the window the idle fleet stays at its own minimum.
    expect(kinds(decide(snapshot(servers), policy(), EMPTY_HISTORY, NOW).decisions)).toEqual([]);
  });

  it("keeps idle servers through the window and lets them go once it has closed", () => {
    const servers = [server("a", IDLE), server("b", IDLE), server("c", IDLE)];
    const history = steadyHistory(2, { ...IDLE, cores: 12, ramGb: 48 });
    const withWindow = (window: DatedWindow) => ({ ...policy({ min: 1, baseline: 1 }), datedWindows: [window] });
    expect(decide(snapshot(servers), withWindow(exam(NOW - MINUTE, NOW + MINUTE, 3)), history, NOW).decisions).toEqual([]);
    // `to` is exclusive, `from` inclusive.
    expect(kinds(decide(snapshot(servers), withWindow(exam(NOW - 60 * MINUTE, NOW, 3)), history, NOW).decisions)).toContain("drain a");
    expect(decide(snapshot(servers), withWindow(exam(NOW, NOW + MINUTE, 3)), history, NOW).decisions).toEqual([]);
  });

  it("takes the higher of the weekly and the dated minimum", () => {
    // Tuesday 10:00 in Berlin: the weekly window asks for 4.
    const weekly = policy({ windows: [{ days: ["tue"], from: "07:30", to: "14:00", min: 4 }] });
    expect(minimumAt({ ...weekly, datedWindows: [exam(NOW - MINUTE, NOW + MINUTE, 2)] }, NOW)).toBe(4);
    expect(minimumAt({ ...weekly, datedWindows: [exam(NOW - MINUTE, NOW + MINUTE, 7)] }, NOW)).toBe(7);
    expect(minimumAt({ ...weekly, datedWindows: [exam(NOW + MINUTE, NOW + 2 * MINUTE, 7)] }, NOW)).toBe(4);
  });
});
