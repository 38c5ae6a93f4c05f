import { describe, expect, it } from "vitest";
import { closedLoopVerdict, fixedRateVerdict, servedPerSecond } from "../bench/checkins-verdict.js";

describe("the check-in bench's verdict", () => {
  it("counts only 2xx answers as served: fast refusals do not make a fast scaler", () => {
    // 10 s at 12,000 answers/s, of which only 1,000 a second were 2xx (the rest quick 401s or 503s).
    const refusing = { "2xx": 10_000, duration: 10, latency: { p99: 4 } };
    expect(servedPerSecond(refusing)).toBe(1_000);
    expect(closedLoopVerdict([{ connections: 32, result: refusing }]).met).toBe(false);
  });

  it("judges the closed loop on the most served at p99 under 20 ms", () => {
    const runs = [
      { connections: 16, result: { "2xx": 52_000, duration: 10, latency: { p99: 12 } } },
      { connections: 64, result: { "2xx": 60_000, duration: 10, latency: { p99: 31 } } },
    ];
    const { best, met } = closedLoopVerdict(runs);
    expect(best?.connections).toBe(16);
    expect(met).toBe(true);
  });

  it("reads a fixed-rate run that answered every check-in at 5,000/s with p99 3.6 ms as within the target", () => {
    // vegeta's throughput for this run was 4,999.7/s (it divides by the wait for the last answers too).
    const verdict = fixedRateVerdict({ latencies: { "99th": 3.6e6 }, rate: 5_000.02, success: 1 }, 5_000);
    expect(verdict.served.toFixed(0)).toBe("5000");
    expect(verdict.met).toBe(true);
  });

  it("finds a fixed-rate run short of the target when answers were not all 2xx or came late", () => {
    expect(fixedRateVerdict({ latencies: { "99th": 3.6e6 }, rate: 5_000, success: 0.97 }, 5_000).met).toBe(false);
    expect(fixedRateVerdict({ latencies: { "99th": 45e6 }, rate: 5_000, success: 1 }, 5_000).met).toBe(false);
    expect(fixedRateVerdict({ latencies: { "99th": 3.6e6 }, rate: 2_000, success: 1 }, 2_000).met).toBe(false);
  });
});
