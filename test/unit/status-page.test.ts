import { describe, expect, it } from "vitest";
import { fleetPage, windowsAt, type FleetPageData } from "../../scaler/api/status-page.js";
import type { ServerReadings } from "../../scaler/loop/controller.js";
import { workerPolicySchema } from "../../infra/config.js";

const policy = workerPolicySchema.parse({
  min: 1,
  max: 4,
  baseline: 1,
  defaultSize: { cores: 2, ramGb: 8 },
  maxSize: { cores: 4, ramGb: 16 },
  timeZone: "Europe/Berlin",
  windows: [
    { days: ["mon", "tue", "wed", "thu", "fri"], from: "07:30", to: "13:30", min: 3 },
    { days: ["sat"], from: "09:00", to: "10:00", min: 2 },
  ],
});
const berlin = (local: string) => Date.parse(`${local}+01:00`);

describe("the time windows a fleet page shows", () => {
  it("names the open window and the next one to open, in the fleet's zone", () => {
    // Monday 2026-11-23, 10:00 in Berlin: the school window is open; the next opens on Tuesday.
    expect(windowsAt(policy, berlin("2026-11-23T10:00:00"))).toEqual({
      open: "Mon 07:30–13:30, at least 3 servers",
      next: "Tue 07:30–13:30, at least 3 servers",
    });
    // Friday evening: the Saturday window comes before Monday's.
    expect(windowsAt(policy, berlin("2026-11-27T18:00:00"))).toEqual({ next: "Sat 09:00–10:00, at least 2 servers" });
    // Early Monday: today's window is next.
    expect(windowsAt(policy, berlin("2026-11-23T06:00:00"))).toEqual({ next: "Mon 07:30–13:30, at least 3 servers" });
    expect(windowsAt({ ...policy, windows: [] }, berlin("2026-11-23T06:00:00"))).toEqual({});
  });
});

describe("the fleet page", () => {
  const reading = (value: number | null, status: "fresh" | "stale" | "missing") => ({ value, status });
  const readings = (changes: Partial<ServerReadings>): ServerReadings => ({
    at: berlin("2026-11-23T10:00:00"),
    cpu: reading(0.5, "fresh"),
    memory: reading(0.4, "fresh"),
    meetings: reading(2, "fresh"),
    participants: reading(40, "fresh"),
    scalelite: { state: "enabled", online: true, load: 40, loadMultiplier: 1 },
    scaleliteStatus: "fresh",
    ...changes,
  });
  const page = (servers: FleetPageData["status"]["servers"], changes: Partial<FleetPageData> = {}) =>
    fleetPage({
      status: { fleet: "bbb", starting: false, servers, lastPeriod: null, sanity: null },
      policy,
      groupPaused: false,
      globalPause: { paused: false },
      recent: [],
      now: berlin("2026-11-23T10:00:00"),
      ...changes,
    });
  const server = { cores: 4, ramGb: 16, power: "running", lastCheckIn: null };

  it("marks stale readings, and says how the policy counts a server without metrics", () => {
    const html = page([
      { ...server, name: "bbb-1", phase: "active", readings: readings({ cpu: reading(0.7, "stale") }) },
      {
        ...server,
        name: "bbb-2",
        phase: "active",
        readings: readings({ cpu: reading(null, "missing"), memory: reading(null, "missing") }),
      },
      {
        ...server,
        name: "bbb-3",
        phase: "active",
        readings: readings({ cpu: reading(null, "missing"), participants: reading(null, "missing"), meetings: reading(null, "missing") }),
      },
    ]);
    const row = (name: string) => new RegExp(`<tr data-server="${name}">(.*?)</tr>`).exec(html)?.[1] ?? "";
    expect(row("bbb-1")).toMatch(/70 %<span class="mark"[^>]*>stale<\/span>/);
    expect(row("bbb-2")).toContain(">estimated</span>");
    expect(row("bbb-3")).toContain(">counted full</span>");
  });

  it("shows a pause, global or of the fleet, and a last check-in when the status carries one", () => {
    expect(page([], { globalPause: { paused: true, by: "ops" } })).toContain("All scaling paused by ops");
    expect(page([], { groupPaused: true })).toContain("Scaling of this fleet paused");
    // As the fleet's status reports a pause.
    const paused = (scope: string, by: string | null) =>
      fleetPage({
        status: { fleet: "bbb", starting: false, servers: [], lastPeriod: null, sanity: null, paused: { scope, by } } as never,
        policy,
        groupPaused: false,
        globalPause: { paused: false },
        recent: [],
        now: berlin("2026-11-23T10:00:00"),
      });
    expect(paused("global", "ops")).toContain("All scaling paused by ops");
    expect(paused("fleet", null)).toContain("Scaling of this fleet paused");
    expect(page([])).toContain("Scaling active");
    const html = page([{ ...server, name: "bbb-1", phase: "active", lastCheckIn: "2026-11-23T08:59:30.000Z" } as never]);
    expect(html).toContain("2026-11-23 09:59:30");
  });
});

describe("dated windows on the fleet page", () => {
  it("shows an open dated window with a higher minimum, and the earliest next window of either kind", () => {
    const exam = { name: "exam", from: berlin("2026-11-23T09:00:00"), to: berlin("2026-11-23T12:00:00"), min: 20 };
    const later = { name: "concert", from: berlin("2026-11-23T16:00:00"), to: berlin("2026-11-23T18:00:00"), min: 5 };
    expect(windowsAt({ ...policy, datedWindows: [exam, later] }, berlin("2026-11-23T10:00:00"))).toEqual({
      open: "exam 2026-11-23 09:00–2026-11-23 12:00, at least 20 servers",
      next: "concert 2026-11-23 16:00–2026-11-23 18:00, at least 5 servers",
    });
    // A dated window below the weekly minimum does not hide the weekly one.
    expect(windowsAt({ ...policy, datedWindows: [{ ...exam, min: 2 }] }, berlin("2026-11-23T10:00:00")).open).toBe(
      "Mon 07:30–13:30, at least 3 servers",
    );
  });
});
