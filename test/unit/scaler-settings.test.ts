import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SettingsError, loadSettings, parseSettings } from "../../scaler/settings.js";
import { replicationOf } from "../../scaler/store/store.js";

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "confscale-settings-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const TOKEN = "t".repeat(40);

describe("scaler settings", () => {
  it("fills in the documented defaults", () => {
    const settings = parseSettings({ redis: { url: "redis://127.0.0.1:6379" }, sidecar: { keyBaseUrl: "https://keys.example.org/asap" } });
    expect(settings.listen).toEqual({ host: "127.0.0.1", port: 8080 });
    expect(settings.redis.keyPrefix).toBe("confscale:");
    expect(settings.instanceTtl).toEqual({ provisioningSeconds: 900, idleSeconds: 300, shuttingDownSeconds: 600 });
    expect(settings.sidecar).toMatchObject({
      acceptedIssuers: ["jitsi-autoscaler-sidecar"],
      audience: "jitsi-autoscaler",
      keyCacheSeconds: 3600,
    });
  });

  it("reads a YAML file and lets the environment override it, tokens included", async () => {
    const file = join(dir, "scaler.yaml");
    await writeFile(
      file,
      `listen:\n  port: 9000\nredis:\n  url: redis://file:6379\nsidecar:\n  keyBaseUrl: https://keys.example.org\n  audience: my-scaler\n`,
    );
    const settings = await loadSettings({
      SCALER_CONFIG: file,
      SCALER_REDIS_URL: "redis://10.0.0.2:6379",
      SCALER_LISTEN_PORT: "9100",
      SCALER_API_TOKENS: `ops:operator:${TOKEN}, cron:operator:${TOKEN}x`,
    });
    expect(settings.redis.url).toBe("redis://10.0.0.2:6379");
    expect(settings.listen.port).toBe(9100);
    expect(settings.sidecar.audience).toBe("my-scaler");
    expect(settings.apiTokens.map((token) => [token.name, token.role])).toEqual([
      ["ops", "operator"],
      ["cron", "operator"],
    ]);
  });

  it("names every wrong setting", () => {
    let caught: unknown;
    try {
      parseSettings({
        redis: { url: "http://redis" },
        apiTokens: [{ name: "x", role: "root", token: "short" }],
        sidecar: { keyBaseUrl: "not a url" },
        // The fleet becomes a group: its name must be a group id.
        fleet: { template: { fleet: "Bad_Fleet" } },
        colour: "blue",
      });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(SettingsError);
    const fields = (caught as SettingsError).problems.map((problem) => problem.field);
    expect(fields).toEqual(
      expect.arrayContaining([
        "redis.url",
        "apiTokens.0.role",
        "apiTokens.0.token",
        "sidecar.keyBaseUrl",
        "fleet.template.fleet",
        "colour",
      ]),
    );
  });

  it("takes check-in workers from the file, lets the environment change or turn them off, and refuses them on the main port", async () => {
    const file = join(dir, "workers.yaml");
    await writeFile(file, `redis:\n  url: redis://file:6379\nsidecar:\n  keyBaseUrl: https://keys.example.org\n  workers:\n    count: 2\n`);
    expect((await loadSettings({ SCALER_CONFIG: file })).sidecar.workers).toEqual({ count: 2, port: 8081 });
    expect((await loadSettings({ SCALER_CONFIG: file, SCALER_SIDECAR_WORKERS: "4", SCALER_SIDECAR_PORT: "9081" })).sidecar.workers).toEqual(
      { count: 4, port: 9081 },
    );
    expect((await loadSettings({ SCALER_CONFIG: file, SCALER_SIDECAR_WORKERS: "0" })).sidecar.workers?.count).toBe(0);
    expect(
      (await loadSettings({ SCALER_REDIS_URL: "redis://127.0.0.1", SCALER_ASAP_KEY_BASE_URL: "https://k.example.org" })).sidecar.workers,
    ).toBeUndefined();

    await expect(loadSettings({ SCALER_CONFIG: file, SCALER_SIDECAR_PORT: "8080" })).rejects.toThrow(
      /sidecar\.workers\.port: must differ from listen\.port \(8080\)/,
    );
    await expect(loadSettings({ SCALER_CONFIG: file, SCALER_SIDECAR_WORKERS: "many" })).rejects.toThrow(/sidecar\.workers\.count: /);
    await expect(
      loadSettings({
        SCALER_REDIS_URL: "redis://127.0.0.1",
        SCALER_ASAP_KEY_BASE_URL: "https://k.example.org",
        SCALER_SIDECAR_PORT: "9081",
      }),
    ).rejects.toThrow(
      /sidecar\.workers\.count: required with a workers' port: how many worker processes serve it \(SCALER_SIDECAR_WORKERS\)/,
    );
  });

  it("names the variable or key that sets a missing or wrong setting", async () => {
    await expect(loadSettings({})).rejects.toThrow(
      /redis\.url: required: set SCALER_REDIS_URL, or redis\.url in the settings file named by SCALER_CONFIG\n.*sidecar\.keyBaseUrl: required: set SCALER_ASAP_KEY_BASE_URL/s,
    );
    await expect(loadSettings({ SCALER_REDIS_URL: "http://redis", SCALER_ASAP_KEY_BASE_URL: "https://k.example.org" })).rejects.toThrow(
      "redis.url: expected a redis:// or rediss:// URL (SCALER_REDIS_URL, or redis.url in the settings file named by SCALER_CONFIG)",
    );
  });

  it("takes Redis Sentinel from the environment, with a replica to acknowledge check-ins, and names a bad sentinel", async () => {
    const base = { SCALER_REDIS_URL: "redis://127.0.0.1", SCALER_ASAP_KEY_BASE_URL: "https://k.example.org" };
    const plain = await loadSettings(base);
    expect(plain.redis.sentinels).toBeUndefined();
    expect(replicationOf(plain.redis)).toBeUndefined();
    const sentinel = await loadSettings({
      ...base,
      SCALER_REDIS_SENTINELS: "10.0.0.5:26379, 10.0.0.6:26380",
      SCALER_REDIS_SENTINEL_NAME: "confscale",
    });
    expect(sentinel.redis).toMatchObject({
      sentinels: [
        { host: "10.0.0.5", port: 26379 },
        { host: "10.0.0.6", port: 26380 },
      ],
      name: "confscale",
    });
    expect(replicationOf(sentinel.redis)).toEqual({ replicas: 1, timeoutMs: 500 });
    await expect(loadSettings({ ...base, SCALER_REDIS_SENTINELS: "10.0.0.5" })).rejects.toThrow(/redis\.sentinels\.0\.port: /);
  });

  it("refuses a token list entry without a role", async () => {
    await expect(
      loadSettings({ SCALER_REDIS_URL: "redis://127.0.0.1", SCALER_ASAP_KEY_BASE_URL: "https://k.example.org", SCALER_API_TOKENS: TOKEN }),
    ).rejects.toThrow(/SCALER_API_TOKENS\[0\]: expected name:role:token/);
  });
});
