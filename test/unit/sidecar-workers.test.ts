import { describe, expect, it } from "vitest";
import { RestartBackoff } from "../../scaler/sidecarWorkers.js";

describe("replacing check-in workers that die", () => {
  it("waits twice as long each time they die early, up to 30 s, and replaces one that ran steadily at once", () => {
    const backoff = new RestartBackoff();
    const early = Array.from({ length: 7 }, () => backoff.next(500));
    expect(early).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]);
    expect(backoff.next(60_000)).toBe(0);
    // A steady run starts the count afresh.
    expect(backoff.next(500)).toBe(1_000);
  });
});
