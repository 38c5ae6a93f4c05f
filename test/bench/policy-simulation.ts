/**
 * Replays scenario families (scenarios.ts), each over several weeks at one-minute steps, through confscale's policy,
 * the seed deployment's rules and two references, on the same simulated fleet (fleet-sim.ts), and judges the result.
 *   - confscale: the policy in scaler/policy, every minute. Its forecast is what it recorded itself on the same weekday
 *     a week before, by slot of the week as the decision loop keeps it; its fleet is what it left the week before
 *     (the first week begins with the baseline servers only: everything else is created).
 *   - confscale, no history: the same on the same fleet, without a forecast (its first week, or a lost profile).
 *   - seed rules: the seed deployment's scaler (REFERENCE §4), every 5 minutes, on its own declared fleet.
 *   - achievable reference (references.ts): knows the whole day, obeys boots, creates, `max`, the launch rate and the
 *     window minimums, places whole meetings by their true cost; it starts from confscale's fleet of that day.
 *   - reference at the up-thresholds: the achievable reference packing each server only to the operator's
 *     up-thresholds, not to the overload line: what knowing the whole day buys a scaler that keeps every server under
 *     the thresholds the operator set.
 *   - reference keeping headroom: the same, packing each server only to the up-thresholds less the operator's
 *     headroom, where confscale keeps its servers. Each core-hour verdict prints both ratios beside confscale's.
 *   - lower bound (references.ts): the load pooled onto max-size servers with no boot; no fleet reaches it.
 * Overload is measured alike for every row: a running server above 90 % of its cores or RAM (load-model.ts), and the
 * participants on it each minute. Every row runs under the operator settings below; none is tuned per row.
 *
 * Usage: npm run bench:policy [-- path/to/trace.csv] [--weeks N] [--quick] [--family NAME]...
 * (--quick: two weeks per family instead of four, for a short run; the verdicts are the same. --family: only the
 * named families (scenarios.ts `Family`), for a short run while working on one.)
 */
import { parseArgs } from "node:util";
import { workerPolicySchema, type WorkerPolicy } from "../../infra/config.js";
import {
  CREATE_MINUTES,
  START_MINUTES,
  addResults,
  carryOver,
  dayOf,
  launchRateKept,
  newFleet,
  runSpan,
  type Day,
  type FleetState,
  type Result,
} from "./fleet-sim.js";
import { targetUtilization } from "../../scaler/policy/ledger.js";
import { achievableReference, lowerBound, windowMinimumCoreHours, type PackingLine } from "./references.js";
import { confscaleScaler, seedScaler, type LoadProfile } from "./scalers.js";
import { scenarios, type Family, type Scenario } from "./scenarios.js";

const options = parseArgs({
  allowPositionals: true,
  options: { weeks: { type: "string" }, quick: { type: "boolean" }, family: { type: "string", multiple: true } },
});
const TRACE = options.positionals[0] ?? new URL("../traces/school-day.csv", import.meta.url).pathname;
const WEEKS = options.values.weeks !== undefined ? Number.parseInt(options.values.weeks, 10) : options.values.quick === true ? 2 : 4;
if (!Number.isInteger(WEEKS) || WEEKS < 2) throw new RangeError(`--weeks must be an integer of at least 2, got ${options.values.weeks}`);

/** The operator's settings, the same for every row and every family: a school day needs a fleet ready before the first bell. */
const POLICY: WorkerPolicy = workerPolicySchema.parse({
  min: 1,
  max: 60,
  baseline: 2,
  defaultSize: { cores: 2, ramGb: 8 },
  maxSize: { cores: 4, ramGb: 16 },
  timeZone: "Europe/Berlin",
  windows: [{ days: ["mon", "tue", "wed", "thu", "fri"], from: "07:30", to: "14:00", min: 30 }],
  thresholds: { cpu: { up: 0.75, down: 0.5 }, memory: { up: 0.8, down: 0.55 } },
  launchRate: { count: 20, perSeconds: 300 },
  // Installed, stopped servers ready to start: a tenth of those taking meetings, at least two (more on a surge day).
  warmPool: { min: 2, share: 0.1 },
  // As the setting says: a start plus one decision period, so a launch lands within the projection.
  leadTimeSeconds: (START_MINUTES + 1) * 60,
  resizeLeadSeconds: 240,
});

/** Where the reference at the up-thresholds packs a server: the operator's own line for scaling up. */
const UP_THRESHOLDS: PackingLine = { cpu: POLICY.thresholds.cpu.up, memory: POLICY.thresholds.memory.up };
/** Where the reference keeping headroom packs a server: where confscale keeps its own, the up-thresholds less the headroom. */
const TARGETS: PackingLine = targetUtilization(POLICY);

interface Rows {
  confscale: Result;
  noHistory: Result;
  seed: Result;
  reference: Result;
  lowerBound: Result;
  thresholdReference: Result;
  headroomReference: Result;
  windowMinimumCoreHours: number;
  /** Whether confscale and the references kept `max` and the launch rate (the references also the window minimums) on every scored day. */
  rulesKept: { confscale: boolean; reference: boolean };
}

const copy = (state: FleetState, day: Day) => carryOver(state, day, day);

/** Replays a scenario's weeks in order; the scored ones also through the other rows, from the same starting fleet. */
function replay(scenario: Scenario): Rows {
  const days = scenario.weeks.map((span) => dayOf(span, POLICY.timeZone));
  const profile: LoadProfile = new Map();
  const scored: Omit<Rows, "rulesKept" | "windowMinimumCoreHours">[] = [];
  const rulesKept = { confscale: true, reference: true };
  let windowMinimum = 0;
  let state = newFleet(POLICY, POLICY.baseline);
  days.forEach((day, week) => {
    if (week > 0) state = carryOver(state, days[week - 1] as Day, day);
    const start = copy(state, day);
    const confscale = runSpan(confscaleScaler("confscale", POLICY, profile), day, state, POLICY);
    state = confscale.state;
    if (!scenario.scored.includes(week)) return;
    const packedTo = (line?: PackingLine, name?: string) =>
      runSpan(achievableReference(POLICY, day, line, name), day, copy(start, day), POLICY);
    const reference = packedTo();
    const thresholdReference = packedTo(UP_THRESHOLDS, "reference at up-thresholds");
    const headroomReference = packedTo(TARGETS, "reference keeping headroom");
    const kept = ({ fleet }: typeof confscale) => launchRateKept(fleet.launches, POLICY) && fleet.peakExisting <= POLICY.max;
    rulesKept.confscale &&= kept(confscale);
    for (const run of [reference, thresholdReference, headroomReference])
      rulesKept.reference &&= kept(run) && run.fleet.minutesBelowMinimum === 0;
    windowMinimum += windowMinimumCoreHours(day, POLICY);
    scored.push({
      confscale: confscale.result,
      noHistory: runSpan(confscaleScaler("confscale, no history", POLICY), day, copy(start, day), POLICY).result,
      seed: runSpan(seedScaler(POLICY), day, newFleet(POLICY, POLICY.baseline, POLICY.max - POLICY.baseline), POLICY).result,
      reference: reference.result,
      lowerBound: lowerBound(day, POLICY),
      thresholdReference: thresholdReference.result,
      headroomReference: headroomReference.result,
    });
  });
  const sum = (key: keyof (typeof scored)[number]) =>
    addResults(
      scored[0]?.[key].name ?? key,
      scored.map((rows) => rows[key]),
    );
  return {
    confscale: sum("confscale"),
    noHistory: sum("noHistory"),
    seed: sum("seed"),
    reference: sum("reference"),
    lowerBound: sum("lowerBound"),
    thresholdReference: sum("thresholdReference"),
    headroomReference: sum("headroomReference"),
    windowMinimumCoreHours: windowMinimum,
    rulesKept,
  };
}

interface Verdict {
  scenario: string;
  claim: string;
  measured: string;
  pass: boolean;
}

const ratio = (value: number, base: number) => (base === 0 ? (value === 0 ? 1 : Infinity) : value / base);
const times = (value: number, digits = 3) => (Number.isFinite(value) ? `${value.toFixed(digits)}x` : "∞");

/** The verdicts of issue 19 for a family. */
function judge(scenario: Scenario, rows: Rows): Verdict[] {
  const { confscale, noHistory, seed, reference } = rows;
  const verdict = (claim: string, measured: string, pass: boolean): Verdict => ({ scenario: scenario.family, claim, measured, pass });
  const verdicts = [
    verdict(
      "the references keep max, the launch rate and the window minimums",
      rows.rulesKept.reference ? "kept" : "BROKEN",
      rows.rulesKept.reference,
    ),
    verdict(
      "confscale keeps max, the launch rate and the window minimums",
      rows.rulesKept.confscale ? "kept" : "BROKEN",
      rows.rulesKept.confscale,
    ),
  ];
  const family: Family = scenario.family;
  // Beside each ratio, what a scaler that knows the whole day reaches under the operator's up-thresholds, and keeping
  // the operator's headroom below them as confscale does.
  const besideReferences = (base: Result) =>
    ` (references at the up-thresholds: ${times(ratio(rows.thresholdReference.coreHours, base.coreHours))},` +
    ` keeping headroom: ${times(ratio(rows.headroomReference.coreHours, base.coreHours))})`;
  if (family === "ordinary" || family === "recorded" || family === "dst" || family === "after-holiday") {
    const toSeed = ratio(confscale.coreHours, seed.coreHours);
    const toReference = ratio(confscale.coreHours, reference.coreHours);
    verdicts.push(
      verdict("0 overloaded server-minutes", String(confscale.overloadedServerMinutes), confscale.overloadedServerMinutes === 0),
      verdict("core-hours ≤ 0.85x the seed rules'", times(toSeed) + besideReferences(seed), toSeed <= 0.85),
      verdict("core-hours ≤ 1.2x the achievable reference's", times(toReference) + besideReferences(reference), toReference <= 1.2),
    );
    if (family === "ordinary" || family === "recorded") {
      const firstWeek = ratio(noHistory.coreHours, confscale.coreHours);
      verdicts.push(
        verdict("first week (no history) within 10 % of later weeks' core-hours", times(firstWeek, 4), Math.abs(firstWeek - 1) <= 0.1),
      );
    }
  } else if (family === "surge" || family === "camera") {
    const toSeed = ratio(confscale.overloadedParticipantMinutes, seed.overloadedParticipantMinutes);
    const toReference = ratio(confscale.overloadedParticipantMinutes, reference.overloadedParticipantMinutes);
    const cores = ratio(confscale.coreHours, reference.coreHours);
    verdicts.push(
      verdict("overloaded participant-min ≤ 0.3x the seed rules'", times(toSeed), toSeed <= 0.3),
      verdict("overloaded participant-min ≤ 2x the achievable reference's", times(toReference), toReference <= 2),
      verdict("core-hours ≤ 1.3x the achievable reference's", times(cores) + besideReferences(reference), cores <= 1.3),
    );
  } else {
    const toMinimum = ratio(confscale.coreHours, rows.windowMinimumCoreHours);
    verdicts.push(verdict("core-hours ≤ 1.1x the window minimums alone", times(toMinimum), toMinimum <= 1.1));
  }
  return verdicts;
}

function printRows(scenario: Scenario, rows: Rows): void {
  const scoredLabels = scenario.scored.map((week) => scenario.weeks[week]?.label).join(", ");
  console.log(`\n${scenario.name}`);
  console.log(`  ${scenario.weeks.length} weeks (${scenario.weeks[0]?.date} on), scored: ${scoredLabels}`);
  console.log(
    "  row                        server-h   core-h  RAM-GB-h  overloaded server-min  overloaded participant-min  peak servers  cut off  rejected  core-h vs reference",
  );
  for (const result of [
    rows.confscale,
    rows.noHistory,
    rows.seed,
    rows.reference,
    rows.thresholdReference,
    rows.headroomReference,
    rows.lowerBound,
  ]) {
    console.log(
      [
        ` ${result.name.padEnd(26)}`,
        result.serverHours.toFixed(1).padStart(9),
        result.coreHours.toFixed(1).padStart(8),
        result.ramGbHours.toFixed(0).padStart(9),
        String(result.overloadedServerMinutes).padStart(22),
        String(result.overloadedParticipantMinutes).padStart(27),
        String(result.peakServers).padStart(13),
        String(result.meetingsCutOff).padStart(8),
        String(result.meetingsRejected).padStart(9),
        times(ratio(result.coreHours, rows.reference.coreHours), 2).padStart(20),
      ].join(" "),
    );
  }
  console.log(`  window minimums alone: ${rows.windowMinimumCoreHours.toFixed(1)} core-h`);
}

console.log(
  `policy bench: ${WEEKS} weeks per family, one-minute steps; create ${CREATE_MINUTES} min (baked image), start ${START_MINUTES} min, ` +
    `max ${POLICY.max}, launch rate ${POLICY.launchRate.count} per ${POLICY.launchRate.perSeconds} s`,
);
const verdicts: Verdict[] = [];
const families = options.values.family;
const chosen = scenarios(WEEKS, TRACE).filter((scenario) => families === undefined || families.includes(scenario.family));
if (chosen.length === 0) throw new RangeError(`--family matches no scenario family: ${families?.join(", ")}`);
for (const scenario of chosen) {
  const rows = replay(scenario);
  printRows(scenario, rows);
  const judged = judge(scenario, rows);
  for (const verdict of judged) console.log(`  ${verdict.pass ? "pass" : "FAIL"}  ${verdict.claim}: ${verdict.measured}`);
  verdicts.push(...judged);
}
const failed = verdicts.filter((verdict) => !verdict.pass);
console.log(`\n${verdicts.length - failed.length} of ${verdicts.length} verdicts pass`);
for (const verdict of failed) console.log(`  FAIL  ${verdict.scenario}: ${verdict.claim}: ${verdict.measured}`);
if (failed.length > 0) process.exitCode = 1;
