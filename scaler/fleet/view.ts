import type { OperatorAction } from "./operator.js";

/** A fleet as the HTTP surface sees it: its status, operator actions, a preview, a period now, and its scrape targets. */
export interface FleetView<Status = unknown> {
  readonly name: string;
  status(): Status;
  operate(server: string, action: OperatorAction, actor: string): Promise<{ server: string; phase: string }>;
  preview(): Promise<Record<string, number>>;
  /** Runs one gather → decide → act period now, as the timer would, and answers the status after it. */
  reconcile(): Promise<unknown>;
  /** Prometheus `http_sd` target groups of the fleet's running workers. */
  scrapeTargets(): { targets: string[]; labels: Record<string, string> }[];
}
