import { Hono } from "hono";
import { z } from "zod";
import { workerNameSchema } from "../../infra/config.js";
import { OPERATOR_ACTIONS, type OperatorAction } from "../fleet/operator.js";
import { groupIdSchema } from "../store/schemas.js";
import { requireRole, type ApiEnv } from "./auth.js";
import { HttpError, parseWith } from "./http.js";

/** What the control-plane API can do with a fleet the scaler drives. */
export interface OperableFleet {
  readonly name: string;
  status(): unknown;
  operate(server: string, action: OperatorAction, actor: string): Promise<{ server: string; phase: string }>;
  preview(): Promise<Record<string, number>>;
  /** Runs one gather → decide → act period now, as the timer would, and answers the status after it. */
  reconcile(): Promise<unknown>;
}

const actionSchema = z.enum(OPERATOR_ACTIONS);

/**
 * The fleets under `/api/v1/fleets`, mounted inside the control API, which authenticates: viewers read their status;
 * operators cordon, enable and panic servers, preview the fleet stack and run a period now. Each call waits its turn
 * with the fleet's periods. A fleet is named by its group's id.
 */
export function fleetRoutes(fleets: readonly OperableFleet[]): Hono<ApiEnv> {
  const byName = new Map(fleets.map((fleet) => [fleet.name, fleet]));
  const api = new Hono<ApiEnv>();
  const viewer = requireRole("viewer");
  const operator = requireRole("operator");
  const fleetOf = (name: string): OperableFleet => {
    const fleet = byName.get(parseWith(groupIdSchema, name, "fleet"));
    if (fleet === undefined)
      throw new HttpError(404, "fleet_not_found", `no fleet ${name}; this scaler drives: ${[...byName.keys()].join(", ") || "none"}`, [
        { field: "fleet", message: "unknown fleet" },
      ]);
    return fleet;
  };

  api.get("/", viewer, (c) => c.json({ fleets: fleets.map((fleet) => fleet.status()) }));
  api.get("/:fleet", viewer, (c) => c.json(fleetOf(c.req.param("fleet")).status()));

  api.post("/:fleet/servers/:server/:action", operator, async (c) => {
    const fleet = fleetOf(c.req.param("fleet"));
    const server = parseWith(workerNameSchema, c.req.param("server"), "server");
    const action = parseWith(actionSchema, c.req.param("action"), "action");
    return c.json(await fleet.operate(server, action, c.get("principal").name));
  });

  api.post("/:fleet/preview", operator, async (c) => c.json({ changes: await fleetOf(c.req.param("fleet")).preview() }));
  api.post("/:fleet/reconcile", operator, async (c) => c.json(await fleetOf(c.req.param("fleet")).reconcile()));

  return api;
}
