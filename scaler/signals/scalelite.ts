import { z } from "zod";
import { signedUrl, type ChecksumAlgorithm } from "./checksum.js";
import { parseJson, requestText, SignalError, safeUrl } from "./http.js";

/** One server as Scalelite's API reports it; load and online come as strings ("unavailable", "online"/"offline"). */
const serverJson = z.object({
  id: z.string(),
  url: z.string(),
  tag: z.string().nullish(),
  bbb_version: z.string().nullish(),
  state: z.enum(["enabled", "cordoned", "disabled"]),
  load: z.union([z.number(), z.string()]).nullish(),
  load_multiplier: z.union([z.number(), z.string()]).nullish(),
  online: z.union([z.boolean(), z.string()]),
});

export interface ScaleliteServer {
  id: string;
  url: string;
  tag: string | null;
  state: "enabled" | "cordoned" | "disabled";
  online: boolean;
  /** Null while Scalelite cannot poll the server ("unavailable"). */
  load: number | null;
  loadMultiplier: number;
}

function toServer(json: z.infer<typeof serverJson>): ScaleliteServer {
  const load = typeof json.load === "number" ? json.load : Number.parseFloat(json.load ?? "");
  const multiplier = typeof json.load_multiplier === "number" ? json.load_multiplier : Number.parseFloat(json.load_multiplier ?? "1");
  return {
    id: json.id,
    url: json.url,
    tag: json.tag ?? null,
    state: json.state,
    online: json.online === true || json.online === "online",
    load: Number.isFinite(load) ? load : null,
    loadMultiplier: Number.isFinite(multiplier) ? multiplier : 1,
  };
}

export interface ScaleliteClientOptions {
  /** Up to `/scalelite/api`, e.g. https://bbb.example.org/scalelite/api */
  baseUrl: string;
  secret: string;
  timeoutMs?: number;
  algorithm?: ChecksumAlgorithm;
}

/**
 * Scalelite's server API (v1.5.1+, REFERENCE §2), with the checksum on the query string. POST bodies are not
 * covered by the checksum, so this API belongs on a private network or behind TLS.
 */
export class ScaleliteClient {
  constructor(private readonly options: ScaleliteClientOptions) {}

  /** Every registered server; an empty list when none is (Scalelite answers 404 then). */
  async getServers(): Promise<ScaleliteServer[]> {
    const { status, body } = await this.call("getServers", {}, undefined, [404]);
    if (status === 404) return [];
    return this.parse(body, status, "getServers", z.array(serverJson)).map(toServer);
  }

  async getServerInfo(id: string): Promise<ScaleliteServer> {
    const { status, body } = await this.call("getServerInfo", { id });
    return toServer(this.parse(body, status, "getServerInfo", serverJson));
  }

  /** Registers a server; Scalelite creates it disabled. */
  async addServer(server: { url: string; secret: string; loadMultiplier?: number; tag?: string }): Promise<ScaleliteServer> {
    const json = {
      server: {
        url: server.url,
        secret: server.secret,
        ...(server.loadMultiplier === undefined ? {} : { load_multiplier: server.loadMultiplier }),
        ...(server.tag === undefined ? {} : { tag: server.tag }),
      },
    };
    const { status, body } = await this.call("addServer", {}, json);
    return toServer(this.parse(body, status, "addServer", serverJson));
  }

  async setState(id: string, state: "enable" | "cordon" | "disable"): Promise<ScaleliteServer> {
    return this.updateServer(id, { state });
  }

  async updateServer(
    id: string,
    server: { state?: "enable" | "cordon" | "disable"; loadMultiplier?: number; tag?: string },
  ): Promise<ScaleliteServer> {
    const json = {
      id,
      server: {
        ...(server.state === undefined ? {} : { state: server.state }),
        ...(server.loadMultiplier === undefined ? {} : { load_multiplier: server.loadMultiplier }),
        ...(server.tag === undefined ? {} : { tag: server.tag }),
      },
    };
    const { status, body } = await this.call("updateServer", {}, json);
    return toServer(this.parse(body, status, "updateServer", serverJson));
  }

  /** Removes the registration; Scalelite does not check for running meetings, so drain first. */
  async deleteServer(id: string): Promise<void> {
    await this.call("deleteServer", {}, { id });
  }

  /** Ends every meeting on the server and disables it (unless `keepState`). */
  async panicServer(id: string, keepState = false): Promise<void> {
    await this.call("panicServer", {}, { id, keep_state: keepState });
  }

  private async call(action: string, params: Record<string, string>, json?: unknown, acceptStatus: readonly number[] = []) {
    const url = signedUrl(this.options.baseUrl, action, params, this.options.secret, this.options.algorithm ?? "sha256");
    const response = await requestText({
      source: "scalelite",
      url,
      timeoutMs: this.options.timeoutMs ?? 5_000,
      ...(json === undefined ? {} : { method: "POST" as const, json }),
      acceptStatus,
    });
    // A checksum failure comes back as BBB-style XML with status 200.
    if (response.body.trimStart().startsWith("<")) {
      const key = /<messageKey>([^<]*)<\/messageKey>/.exec(response.body)?.[1] ?? "unknown";
      throw new SignalError(`refused: ${key}`, "scalelite", safeUrl(url), response.status);
    }
    return response;
  }

  private parse<T>(body: string, status: number, action: string, schema: z.ZodType<T>): T {
    const url = new URL(action, this.options.baseUrl.endsWith("/") ? this.options.baseUrl : `${this.options.baseUrl}/`);
    const parsed = schema.safeParse(parseJson(body, "scalelite", url, status));
    if (!parsed.success)
      throw new SignalError(`unexpected answer to ${action}: ${parsed.error.message.slice(0, 300)}`, "scalelite", safeUrl(url), status);
    return parsed.data;
  }
}
