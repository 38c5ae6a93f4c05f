import type { ScalerStore } from "../store/store.js";

const escapes: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const escape = (text: string) => text.replace(/[&<>"']/g, (char) => escapes[char] ?? char);

/** A page a person reads at a glance: each group, its desired count and its live instances by state. */
export async function statusPage(store: ScalerStore): Promise<string> {
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
  const banner = pause.paused ? `<p><strong>All scaling paused</strong> by ${escape(pause.by ?? "?")}</p>` : "";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>confscale scaler</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .8em;text-align:right}td:first-child,th:first-child{text-align:left}</style>
</head><body><h1>confscale scaler</h1>${banner}
<table><thead><tr><th>group</th><th>type</th><th>scaling</th><th>min / desired / max</th><th>provisioning</th><th>running</th><th>shutting down</th></tr></thead>
<tbody>
${rows}
</tbody></table></body></html>`;
}
