import { describe, expect, it } from "vitest";
import { decide } from "../../scaler/policy/decide.js";
import type { Decision, ForecastPoint, PolicyHistory } from "../../scaler/policy/types.js";
import {
  EMPTY_HISTORY,
  MINUTE,
  bootingServer,
  NOW,
  firstJoins,
  joiningFleet,
  joinsStillComing,
  policy,
  server,
  snapshot,
  steadyHistory,
  stoppedServer,
  trend,
} from "./policy-fixtures.js";

const IDLE = { cpu: 0.05, memory: 0.2 };
const LARGE = { cores: 8, ramGb: 32 };
const kinds = (decisions: Decision[]) =>
  decisions.map((decision) => `${decision.kind}${decision.server === undefined ? "" : ` ${decision.server}`}`);
const withForecast = (history: PolicyHistory, forecast: ForecastPoint[]): PolicyHistory => ({ ...history, forecast });

describe("policy: the load a week ago as a forecast", () => {
  const idleFleet = [server("a", IDLE), server("b", IDLE), stoppedServer("c"), stoppedServer("d")];
  // Last week a lesson started two minutes from now: 10 cores busy.
  const bell: ForecastPoint[] = [{ at: NOW + 2 * MINUTE, cpuCores: 10, memoryGb: 20 }];

  it("launches before a bell last week's load foresees, at the maximum size, and not without it", () => {
    expect(kinds(decide(snapshot(idleFleet), policy(), EMPTY_HISTORY, NOW).decisions)).toEqual([]);

    const outcome = decide(snapshot(idleFleet), policy(), withForecast(EMPTY_HISTORY, bell), NOW);
    expect(kinds(outcome.decisions)).toEqual(["start c"]);
    expect(outcome.decisions[0]?.targetSize).toEqual({ cores: 8, ramGb: 32 });
    expect(outcome.decisions[0]?.inputs).toMatchObject({ forecastCores: 10, forecastRamGb: 20 });
  });

  it("looks no further ahead than the lead time: a bell later than that waits", () => {
    const later: ForecastPoint[] = [{ at: NOW + 10 * MINUTE, cpuCores: 10, memoryGb: 20 }];
    const outcome = decide(snapshot(idleFleet), policy({ leadTimeSeconds: 300 }), withForecast(EMPTY_HISTORY, later), NOW);
    expect(outcome.decisions).toEqual([]);
  });

  it("holds back a scale-in the coming load would have to undo", () => {
    const idle = steadyHistory(3, { ...IDLE, cores: 6, ramGb: 24 });
    const fleet = [server("a", IDLE), server("b", IDLE), server("c", IDLE)];
    expect(kinds(decide(snapshot(fleet), policy(), idle, NOW).decisions)).toContain("drain a");

    const coming: ForecastPoint[] = [{ at: NOW + 3 * MINUTE, cpuCores: 3, memoryGb: 6 }];
    const outcome = decide(snapshot(fleet), policy(), withForecast(idle, coming), NOW);
    expect(outcome.decisions).toEqual([]);
  });

  it("projects a steep rise of joins no higher than last week's load plus the headroom", () => {
    const fleet = joiningFleet();
    const rising = firstJoins();
    const growFar = policy({ resizeLeadSeconds: 300 });
    expect(kinds(decide(snapshot(fleet), growFar, rising, NOW).decisions)).toEqual(["resize a", "resize b"]);

    // Last week the load levelled off where it is now: the joins of this minute are the last of the bell.
    const level: ForecastPoint[] = [1, 2, 3, 4, 5].map((minutes) => ({ at: NOW + minutes * MINUTE, cpuCores: 1.2, memoryGb: 4.8 }));
    const outcome = decide(snapshot(fleet), growFar, withForecast(rising, level), NOW);
    expect(outcome.decisions).toEqual([]);
    expect(outcome.holds).toEqual([]);
  });

  it("launches for a bell's steep joins no more than last week's load with the headroom asks", () => {
    const fleet = joiningFleet(LARGE);
    const rising = joinsStillComing();
    expect(kinds(decide(snapshot(fleet), policy(), rising, NOW).decisions)).toContain("start c");

    // Last week's lesson needs 9.2 / 0.585 = 15.7 of the 16 cores up: the headroom kept for it holds a lesson 11 %
    // bigger under the up-threshold, and the trend of the first joins is no evidence of more.
    const lesson: ForecastPoint[] = [1, 2, 3, 4, 5].map((minutes) => ({ at: NOW + minutes * MINUTE, cpuCores: 9.2, memoryGb: 20 }));
    const outcome = decide(snapshot(fleet), policy(), withForecast(rising, lesson), NOW);
    expect(outcome.decisions).toEqual([]);
  });

  it("lets the trend run unbounded once today's load has outgrown last week's calm (an unscheduled surge)", () => {
    const large = { size: { cores: 8, ramGb: 32 } };
    const joining = { cpu: 0.3, memory: 0.3, participants: 200, meetings: 10 };
    const fleet = [server("a", joining, large), server("b", joining, large), stoppedServer("c")];
    const surging = trend(
      { cpuCores: 2.4, memoryGb: 10, cpuUtilization: 0.15, memoryUtilization: 0.3, participants: 200 },
      { cpuCores: 4.8, memoryGb: 19.2, cpuUtilization: 0.3, memoryUtilization: 0.3, participants: 400 },
    );
    // Last week this hour was calm: 2 cores. Today 4.8 are in use and rising by 2.4 a minute.
    const calm: ForecastPoint[] = [1, 2, 3, 4, 5].map((minutes) => ({ at: NOW + minutes * MINUTE, cpuCores: 2, memoryGb: 10 }));
    const outcome = decide(snapshot(fleet), policy(), withForecast(surging, calm), NOW);
    expect(kinds(outcome.decisions)).toContain("start c");
    expect(outcome.decisions[0]?.inputs.projectedCores).toBeGreaterThan(10);
  });
});

describe("policy: the first week, without last week's load", () => {
  const before = { cpuUtilization: 0.3, memoryUtilization: 0.3 };
  const twoServers = () => joiningFleet(LARGE);
  // Two servers, 200 participants now: 180 joined two minutes ago and 20 in the minute to now. The bell's joins
  // tail off, and at the mean rate of the two minutes the projection counts 600 more over a boot's lead time.
  const tailing = trend(
    { cpuCores: 0.2, memoryGb: 5, participants: 0, ...before },
    { cpuCores: 4.4, memoryGb: 18, participants: 180, ...before },
  );

  it("projects a bell's joins no faster than the latest minute brought them: no launch for joins that tail off", () => {
    // The same 200 over two minutes, still 100 in the minute to now: the burst goes on, and the launch comes.
    expect(kinds(decide(snapshot(twoServers()), policy(), joinsStillComing(), NOW).decisions)).toContain("start c");
    const outcome = decide(snapshot(twoServers()), policy(), tailing, NOW);
    expect(outcome.decisions).toEqual([]);
    expect(outcome.sample.participants).toBe(200);
  });

  it("calls off a launch for a bell whose joins tailed off before it lands", () => {
    const booting = bootingServer("late", LARGE);
    const fleet = [server("a", { cpu: 0.3, memory: 0.3, participants: 200, meetings: 5 }, { size: LARGE }), booting];
    // Joins still coming: the booting server is needed when it lands.
    const joining = trend(
      { cpuCores: 0.1, memoryGb: 2.5, participants: 0, ...before },
      { cpuCores: 1.2, memoryGb: 6, participants: 100, ...before },
    );
    expect(kinds(decide(snapshot(fleet), policy(), joining, NOW).decisions)).toEqual([]);
    const tailed = trend(
      { cpuCores: 0.1, memoryGb: 2.5, participants: 0, ...before },
      { cpuCores: 2.2, memoryGb: 8.6, participants: 180, ...before },
    );
    expect(kinds(decide(snapshot(fleet), policy(), tailed, NOW).decisions)).toEqual(["stop late"]);
  });

  it("keeps the mean trend where last week's load bounds it", () => {
    // Last week this time grew to 14 cores: today's joins are evidence up to that, at their mean rate.
    const lesson: ForecastPoint[] = [1, 2, 3, 4, 5].map((minutes) => ({ at: NOW + minutes * MINUTE, cpuCores: 14, memoryGb: 30 }));
    const outcome = decide(snapshot(twoServers()), policy(), withForecast(tailing, lesson), NOW);
    expect(outcome.decisions[0]?.inputs.projectedCores).toBeGreaterThan(15);
  });
});

describe("policy: last week's bell on a day busier than last week", () => {
  it("adds today's extra load to the bell, with the headroom's share, rather than multiplying the bell by it", () => {
    const large = { size: { cores: 8, ramGb: 32 } };
    const busy = { cpu: 0.5, memory: 0.3, participants: 100, meetings: 5 };
    const fleet = [server("a", busy, large), server("b", busy, large), stoppedServer("c")];
    // Long meetings since before the quarter hour just past: 8 cores in use where last week had 2 (2.5 times as
    // much, counting a default server's cores either side). Last week's bell in two minutes took 10 cores.
    const today = steadyHistory(10, { cpu: 0.5, memory: 0.3, cores: 16, ramGb: 64 });
    const lastWeek = Array.from({ length: 10 }, (_, index): ForecastPoint => ({ at: NOW - index * MINUTE, cpuCores: 2, memoryGb: 10 }));
    const bell: ForecastPoint = { at: NOW + 2 * MINUTE, cpuCores: 10, memoryGb: 20 };
    const outcome = decide(snapshot(fleet), policy(), withForecast(today, [...lastWeek, bell]), NOW);
    expect(outcome.decisions[0]?.inputs.forecastAgreement).toBe(2.5);
    // 10 / 0.9 + 6 extra cores, not 10 x 2.5.
    expect(outcome.decisions[0]?.inputs.forecastCores).toBeCloseTo(17.111, 3);
  });
});

describe("policy: what the load profile keeps for next week", () => {
  const IDLE_LOAD = { cpu: 0.05, memory: 0.2 };
  const fleet = [server("a", IDLE_LOAD), server("b", IDLE_LOAD)];
  const idle = steadyHistory(3, { ...IDLE_LOAD, cores: 4, ramGb: 16 });
  // Last week the minutes just past and this one were a lesson: 12 cores busy.
  const lesson = Array.from({ length: 10 }, (_, index): ForecastPoint => ({ at: NOW - index * MINUTE, cpuCores: 12, memoryGb: 30 }));

  it("keeps today's load on an ordinary day", () => {
    const ordinary = decide(
      snapshot(fleet),
      policy(),
      withForecast(
        idle,
        lesson.map((point) => ({ ...point, cpuCores: 0.3 })),
      ),
      NOW,
    );
    expect(ordinary.profileLoad).toEqual({ cpuCores: ordinary.sample.cpuCores, memoryGb: ordinary.sample.memoryGb });
    expect(decide(snapshot(fleet), policy(), idle, NOW).profileLoad).toEqual({ cpuCores: 0.2, memoryGb: 3.2 });
  });

  it("keeps last week's load on a day far quieter than last week (a holiday), so the week after forecasts an ordinary day", () => {
    const holiday = decide(snapshot(fleet), policy(), withForecast(idle, lesson), NOW);
    expect(holiday.profileLoad).toEqual({ cpuCores: 12, memoryGb: 30 });
  });

  it("keeps nothing when neither today's load nor last week's record of this minute is known", () => {
    const earlier = lesson.map((point) => ({ ...point, at: point.at - 2 * MINUTE }));
    expect(decide(snapshot(fleet), policy(), withForecast(idle, earlier), NOW).profileLoad).toBeNull();
    expect(decide(snapshot([]), policy(), EMPTY_HISTORY, NOW).profileLoad).toBeNull();
  });
});
