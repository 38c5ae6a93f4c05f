import type { TimeWindow } from "../../infra/config.js";
import type { FleetStatus, ServerReadings } from "../loop/controller.js";
import { OUTCOME_KIND } from "../loop/decisions.js";
import { localClock, minimumAt, type DatedWindow } from "../policy/timeWindows.js";
import { policyOutcomeSchema, type Reading, type ScalingPolicy } from "../policy/types.js";
import type { ScalerStore } from "../store/store.js";

const escapes: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const escape = (text: string) => text.replace(/[&<>"']/g, (char) => escapes[char] ?? char);

/** The page reloads itself this often: a period is a minute in service, and nothing on it needs a framework. */
const REFRESH_SECONDS = 5;
/** Decisions listed under "recent decisions", newest first. */
const RECENT_DECISIONS = 12;
const MINUTE_MS = 60_000;
const DAY_MS = 24 * 60 * MINUTE_MS;

const STYLE = `body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{margin:0 0 .2em}h2{margin:1.4em 0 .4em;font-size:1.15em}
.summary{display:flex;flex-wrap:wrap;gap:.5em 2em;margin:.5em 0}
.banner{padding:.5em 1em;border-radius:4px;font-weight:bold;display:inline-block}
.banner.paused{background:#fde2e1;color:#8a1c14}.banner.running{background:#e3f4e1;color:#1d5b16}.banner.dry{background:#fff3cd;color:#6b4f00}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25em .7em;text-align:right;white-space:nowrap}
td:first-child,th:first-child,td.text,th.text{text-align:left}th{background:#f4f4f4}
.phase{font-weight:bold}.phase-active{color:#1d5b16}.phase-booting,.phase-registering,.phase-resizing{color:#8a5a00}
.phase-draining,.phase-held{color:#8a1c14}.phase-stopped{color:#777}
.mark{font-size:.8em;padding:0 .3em;border-radius:3px;margin-left:.3em;background:#fff3cd;color:#6b4f00}
.muted{color:#777}.reason{white-space:normal;text-align:left;max-width:60em}`;

/** What the page shows of one fleet: its status, and what the store knows of its policy, pause and recent decisions. */
export interface FleetPageData {
  status: FleetStatus;
  policy: ScalingPolicy | undefined;
  groupPaused: boolean;
  globalPause: { paused: boolean; by?: string };
  recent: { at: number; kind: string; server: string | null; reason: string; dryRun: boolean }[];
  now: number;
}

/** Reads what the page shows of a fleet besides its status: the group's policy and pause, the global pause, recent decisions. */
export async function fleetPageData(store: ScalerStore, status: FleetStatus, now: number): Promise<FleetPageData> {
  const [group, globalPause, audit, datedWindows] = await Promise.all([
    store.getGroup(status.fleet),
    store.getGlobalPause(),
    store.readAudit(status.fleet, { limit: 200 }),
    store.schedules.datedWindows(status.fleet),
  ]);
  const recent: FleetPageData["recent"] = [];
  for (const entry of audit) {
    if (entry.kind !== OUTCOME_KIND) continue;
    const outcome = policyOutcomeSchema.safeParse(entry.details);
    if (!outcome.success) continue;
    for (const decision of outcome.data.decisions)
      recent.push({
        at: outcome.data.at,
        kind: decision.kind,
        server: decision.server ?? null,
        reason: decision.reason,
        dryRun: decision.dryRun,
      });
    if (recent.length >= RECENT_DECISIONS) break;
  }
  return {
    status,
    policy: group === undefined ? undefined : { ...group.policy, datedWindows },
    groupPaused: group?.paused ?? false,
    globalPause,
    recent: recent.slice(0, RECENT_DECISIONS),
    now,
  };
}

function clockIn(timeZone: string): (at: number) => string {
  const format = new Intl.DateTimeFormat("sv-SE", { timeZone, dateStyle: "short", timeStyle: "medium" });
  return (at) => format.format(at);
}

function percent(reading: Reading): string {
  return reading.value === null ? "" : `${Math.round(reading.value * 100)} %`;
}

/** A reading as a person should take it: fresh, stale (an older read), or not there (the policy's assumption said). */
function loadCell(reading: Reading | undefined, readings: ServerReadings | undefined, phase: string): string {
  if (readings === undefined || reading === undefined) return `<td class="muted">—</td>`;
  if (reading.status === "fresh") return `<td>${percent(reading)}</td>`;
  if (reading.status === "stale")
    return `<td>${percent(reading)}<span class="mark" title="an older reading: the last one did not arrive">stale</span></td>`;
  if (phase !== "active") return `<td class="muted">—</td>`;
  // decide.ts estimates a running server without metrics from its fresh meeting counts, or counts it as fully loaded.
  return readings.participants.status === "fresh"
    ? `<td class="muted">—<span class="mark" title="no metrics yet: the policy estimates this server from its meetings">estimated</span></td>`
    : `<td class="muted">—<span class="mark" title="no metrics and no meeting counts: the policy counts this server as fully loaded">counted full</span></td>`;
}

function countCell(reading: Reading | undefined): string {
  if (reading === undefined || reading.value === null) return `<td class="muted">—</td>`;
  return `<td>${reading.value}${reading.status === "stale" ? `<span class="mark">stale</span>` : ""}</td>`;
}

/** Optional fields another part of the scaler may add to a server's status, shown when present. */
function lastCheckIn(server: Record<string, unknown>, clock: (at: number) => string): string {
  const value = server.lastCheckIn ?? server.lastCheckInAt;
  if (typeof value === "number") return clock(value);
  if (typeof value === "string" && !Number.isNaN(Date.parse(value))) return clock(Date.parse(value));
  return "—";
}

function scaleliteCell(readings: ServerReadings | undefined): string {
  if (readings === undefined || readings.scalelite === null)
    return `<td class="text muted">${readings?.scaleliteStatus === "missing" ? "not registered" : "—"}</td>`;
  const { state, online } = readings.scalelite;
  return `<td class="text">${escape(state)}${online ? "" : ", offline"}${readings.scaleliteStatus === "stale" ? `<span class="mark">stale</span>` : ""}</td>`;
}

function serverRows(data: FleetPageData, clock: (at: number) => string): string {
  return data.status.servers
    .map((server) => {
      const { readings } = server;
      const cells = [
        `<td class="text">${escape(server.name)}</td>`,
        `<td>${server.cores} cores / ${server.ramGb} GB</td>`,
        `<td class="text phase phase-${escape(server.phase)}">${escape(server.phase)}</td>`,
        countCell(readings?.participants),
        countCell(readings?.meetings),
        loadCell(readings?.cpu, readings, server.phase),
        loadCell(readings?.memory, readings, server.phase),
        scaleliteCell(readings),
        `<td class="text">${escape(lastCheckIn(server as Record<string, unknown>, clock))}</td>`,
      ];
      return `<tr data-server="${escape(server.name)}">${cells.join("")}</tr>`;
    })
    .join("\n");
}

const DAY_NAMES: Record<TimeWindow["days"][number], string> = {
  mon: "Mon",
  tue: "Tue",
  wed: "Wed",
  thu: "Thu",
  fri: "Fri",
  sat: "Sat",
  sun: "Sun",
};

/** The window open now, if any, and the next one to open within a week, as "Tue 07:30–13:30, at least 4 servers". */
export function windowsAt(
  policy: Pick<ScalingPolicy, "min" | "timeZone" | "windows" | "datedWindows">,
  now: number,
): { open?: string; next?: string } {
  const describe = (window: TimeWindow, day: string) =>
    `${day} ${window.from}–${window.to}, at least ${window.min} server${window.min === 1 ? "" : "s"}`;
  const today = localClock(now, policy.timeZone);
  const open = policy.windows.find((window) => window.days.includes(today.day) && window.from <= today.time && today.time < window.to);
  const minutes = (time: string) => Number(time.slice(0, 2)) * 60 + Number(time.slice(3, 5));
  let next: { at: number; text: string } | undefined;
  for (let days = 0; days <= 7; days += 1) {
    const day = localClock(now + days * DAY_MS, policy.timeZone).day;
    for (const window of policy.windows) {
      if (!window.days.includes(day)) continue;
      // Wall-clock arithmetic: off by the daylight-saving shift at most on the day the clocks change.
      const at = now + days * DAY_MS + (minutes(window.from) - minutes(today.time)) * MINUTE_MS;
      if (at <= now || (window === open && days === 0)) continue;
      if (next === undefined || at < next.at) next = { at, text: describe(window, DAY_NAMES[day]) };
    }
  }
  // Dated windows (set through the API): an open one with a higher minimum is the one that counts; the next is the earliest.
  const local = (at: number) =>
    new Intl.DateTimeFormat("sv-SE", { timeZone: policy.timeZone, dateStyle: "short", timeStyle: "short" }).format(at);
  const describeDated = (window: DatedWindow) =>
    `${window.name} ${local(window.from)}–${local(window.to)}, at least ${window.min} server${window.min === 1 ? "" : "s"}`;
  let openText = open === undefined ? undefined : describe(open, DAY_NAMES[today.day]);
  let openMin = open?.min ?? -1;
  for (const window of policy.datedWindows ?? []) {
    if (window.from <= now && now < window.to && window.min > openMin) {
      openText = describeDated(window);
      openMin = window.min;
    } else if (window.from > now && (next === undefined || window.from < next.at)) next = { at: window.from, text: describeDated(window) };
  }
  return {
    ...(openText === undefined ? {} : { open: openText }),
    ...(next === undefined ? {} : { next: next.text }),
  };
}

/** The pause the fleet's status reports, where it carries one (`paused: {scope, by}` or null). */
function statusPause(status: FleetStatus): { scope?: unknown; by?: unknown } | undefined {
  const paused = (status as unknown as { paused?: unknown }).paused;
  return paused !== null && typeof paused === "object" ? paused : paused === true ? {} : undefined;
}

function scalingBanner(data: FleetPageData): string {
  const reported = statusPause(data.status);
  if (data.globalPause.paused || reported?.scope === "global") {
    const by = data.globalPause.by ?? (typeof reported?.by === "string" ? reported.by : "?");
    return `<span class="banner paused">All scaling paused by ${escape(by)}</span>`;
  }
  if (data.groupPaused || data.policy?.paused === true || reported !== undefined)
    return `<span class="banner paused">Scaling of this fleet paused</span>`;
  if (data.policy?.dryRun === true) return `<span class="banner dry">Dry run: decisions recorded, not acted on</span>`;
  return `<span class="banner running">Scaling active</span>`;
}

/** One fleet at a glance: servers, what the policy read of each, its recent decisions, pause and time windows. */
export function fleetPage(data: FleetPageData): string {
  const { status, policy } = data;
  const timeZone = policy?.timeZone ?? "UTC";
  const clock = clockIn(timeZone);
  const phases = new Map<string, number>();
  for (const server of status.servers) phases.set(server.phase, (phases.get(server.phase) ?? 0) + 1);
  const windows = policy === undefined ? {} : windowsAt(policy, data.now);
  const period = status.lastPeriod;
  const summary = [
    scalingBanner(data),
    `<span>${status.servers.length} servers: ${[...phases].map(([phase, count]) => `${count} ${escape(phase)}`).join(", ") || "none"}</span>`,
    policy === undefined ? "" : `<span>min ${policy.min}, now ${minimumAt(policy, data.now)}, max ${policy.max}</span>`,
    `<span id="window-now">${windows.open === undefined ? "no time window open" : `window open: ${escape(windows.open)}`}</span>`,
    `<span id="window-next">next window: ${escape(windows.next ?? "none")}</span>`,
  ].filter((part) => part !== "");
  const starting = status.starting
    ? `<p><strong>Starting:</strong> waiting for the fleet's lease or recovering an interrupted update.</p>`
    : "";
  const sample = period?.sample;
  const lastPeriod =
    period === null
      ? `<p class="muted">No period has run yet.</p>`
      : `<p>Last period at ${escape(clock(Date.parse(period.at)))}: participants ${sample?.participants ?? "unknown"}, CPU ${
          sample?.cpuUtilization == null ? "unknown" : `${Math.round(sample.cpuUtilization * 100)} %`
        }, memory ${sample?.memoryUtilization == null ? "unknown" : `${Math.round(sample.memoryUtilization * 100)} %`}${
          period.update === null ? "" : `; update took ${(period.update.durationMs / 1000).toFixed(1)} s`
        }.</p>${[...period.held, ...period.holds.map((reason) => `holding: ${reason}`)]
          .map((text) => `<p class="reason muted">${escape(text)}</p>`)
          .join("")}`;
  const decisions =
    data.recent.length === 0
      ? `<p class="muted" id="no-decisions">No decisions recorded yet.</p>`
      : `<table id="decisions"><thead><tr><th class="text">when</th><th class="text">decision</th><th class="text">server</th><th class="text">reason</th></tr></thead><tbody>
${data.recent
  .map(
    (decision) =>
      `<tr><td class="text">${escape(clock(decision.at))}</td><td class="text">${escape(decision.kind)}${decision.dryRun ? " (dry run)" : ""}</td><td class="text">${escape(decision.server ?? "new server")}</td><td class="reason">${escape(decision.reason)}</td></tr>`,
  )
  .join("\n")}
</tbody></table>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="${REFRESH_SECONDS}">
<title>fleet ${escape(status.fleet)} — confscale</title><style>${STYLE}</style></head>
<body><h1>Fleet ${escape(status.fleet)}</h1>
<p class="muted">Times in ${escape(timeZone)}. This page reloads every ${REFRESH_SECONDS} s; JSON: <code>curl -H 'Accept: application/json' …/fleets/${escape(status.fleet)}</code></p>
<div class="summary">${summary.join("")}</div>${starting}
<h2>Servers</h2>
<table id="servers"><thead><tr><th class="text">server</th><th>size</th><th class="text">phase</th><th>participants</th><th>meetings</th><th>CPU</th><th>memory</th><th class="text">Scalelite</th><th class="text">last check-in</th></tr></thead>
<tbody>
${serverRows(data, clock)}
</tbody></table>
<h2>Last period</h2>${lastPeriod}
<h2>Recent decisions</h2>${decisions}
</body></html>`;
}

/** The scaler's front page: each fleet it drives at a glance, then the sidecar groups with their live instances. */
export async function statusPage(store: ScalerStore, fleets: readonly FleetPageData[] = []): Promise<string> {
  const [groups, counts, pause] = await Promise.all([store.listGroups(), store.countsByGroup(), store.getGlobalPause()]);
  const rows = groups
    .map((group) => {
      const live = counts.get(group.id);
      const cells = [
        group.id,
        group.instanceType,
        group.paused ? "paused" : "active",
        `${group.policy.min} / ${group.desired} / ${group.policy.max}`,
        String(live?.provisioning ?? 0),
        String(live?.running ?? 0),
        String(live?.shutting_down ?? 0),
      ];
      return `<tr>${cells.map((cell) => `<td>${escape(cell)}</td>`).join("")}</tr>`;
    })
    .join("\n");
  const banner = pause.paused ? `<p><span class="banner paused">All scaling paused by ${escape(pause.by ?? "?")}</span></p>` : "";
  const fleetSections = fleets
    .map((data) => {
      const body = /<body>([\s\S]*)<\/body>/.exec(fleetPage(data))?.[1] ?? "";
      // Each fleet's own page, its heading linking to it.
      return `<section>${body.replace(/<h1>Fleet ([^<]*)<\/h1>/, `<h1><a href="/fleets/$1">Fleet $1</a></h1>`)}</section>`;
    })
    .join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="${REFRESH_SECONDS}"><title>confscale scaler</title>
<style>${STYLE}</style>
</head><body>${banner}${fleetSections}
<h2>Sidecar groups</h2>
<table><thead><tr><th>group</th><th>type</th><th>scaling</th><th>min / desired / max</th><th>provisioning</th><th>running</th><th>shutting down</th></tr></thead>
<tbody>
${rows}
</tbody></table></body></html>`;
}
