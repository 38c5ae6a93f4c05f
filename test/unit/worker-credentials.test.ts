import { createPrivateKey, createPublicKey, sign, verify } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  parseWorkerKeyId,
  workerBbbSecret,
  workerCredentials,
  workerKeyId,
  workerPublicKeyPem,
  workerSigningKey,
  WorkerCredentialsError,
} from "../../infra/workerCredentials.js";

const MASTER = "0123456789abcdef0123456789abcdef0123456789abcdef";
const OTHER_MASTER = "fedcba9876543210fedcba9876543210fedcba9876543210";

describe("per-worker credentials", () => {
  it("are the same on every derivation, so a worker's user data never changes between ups", () => {
    expect(workerCredentials(MASTER, "bbb", "bbb-1")).toEqual(workerCredentials(MASTER, "bbb", "bbb-1"));
  });

  it("give every worker, fleet and master secret its own BBB secret and key", () => {
    const variants = [
      workerCredentials(MASTER, "bbb", "bbb-1"),
      workerCredentials(MASTER, "bbb", "bbb-2"),
      workerCredentials(MASTER, "other", "bbb-1"),
      workerCredentials(OTHER_MASTER, "bbb", "bbb-1"),
    ];
    expect(new Set(variants.map((c) => c.bbbSecret)).size).toBe(4);
    expect(new Set(variants.map((c) => c.signingKeyPem)).size).toBe(4);
    expect(variants[0]!.bbbSecret).toMatch(/^[0-9a-f]{40}$/);
    expect(variants[0]!.bbbSecret).not.toContain(MASTER.slice(0, 8));
  });

  it("keep the parts of the name apart: fleet a-b with server c is not fleet a with server b-c", () => {
    expect(workerBbbSecret(MASTER, "a-b", "c")).not.toBe(workerBbbSecret(MASTER, "a", "b-c"));
  });

  it("reveal nothing of another worker: one worker's secret and key neither equal nor sign for another's", () => {
    const leaked = workerCredentials(MASTER, "bbb", "bbb-1");
    const victim = workerCredentials(MASTER, "bbb", "bbb-2");
    expect(victim.bbbSecret).not.toBe(leaked.bbbSecret);
    // The leaked key signs; the victim's public key (what the scaler derives for its key id) refuses it.
    const message = Buffer.from("check-in of bbb-2");
    const forged = sign(null, message, createPrivateKey(leaked.signingKeyPem));
    const victimPublic = createPublicKey(workerPublicKeyPem(MASTER, victim.keyId)!);
    expect(verify(null, message, victimPublic, forged)).toBe(false);
    expect(verify(null, message, victimPublic, sign(null, message, createPrivateKey(victim.signingKeyPem)))).toBe(true);
    // No byte string of the leaked credentials shows up in the victim's.
    for (const part of [leaked.bbbSecret.slice(0, 12), leaked.bbbSecret.slice(-12)]) expect(victim.bbbSecret).not.toContain(part);
  });

  it("derive an Ed25519 key whose public half the scaler finds from the key id alone", () => {
    const credentials = workerCredentials(MASTER, "bbb", "bbb-7");
    expect(credentials.keyId).toBe("confscale-worker/bbb/bbb-7");
    expect(createPrivateKey(credentials.signingKeyPem).asymmetricKeyType).toBe("ed25519");
    expect(workerPublicKeyPem(MASTER, credentials.keyId)).toBe(
      createPublicKey(workerSigningKey(MASTER, "bbb", "bbb-7")).export({ format: "pem", type: "spki" }),
    );
  });

  it("derive public keys only for worker key ids of the fleets the scaler drives", () => {
    expect(workerPublicKeyPem(MASTER, "confscale-worker/other/bbb-1", ["bbb"])).toBeUndefined();
    expect(workerPublicKeyPem(MASTER, "jitsi/jvb", ["bbb"])).toBeUndefined();
    expect(workerPublicKeyPem(MASTER, "confscale-worker/bbb/bbb-1/x")).toBeUndefined();
    expect(workerPublicKeyPem(MASTER, "confscale-worker/bbb/bbb-1", ["bbb"])).toContain("BEGIN PUBLIC KEY");
    expect(parseWorkerKeyId(workerKeyId("bbb", "bbb-1"))).toEqual({ fleet: "bbb", server: "bbb-1" });
  });

  it("refuse a short master secret and names that would make key ids ambiguous", () => {
    expect(() => workerBbbSecret("short", "bbb", "bbb-1")).toThrow(WorkerCredentialsError);
    expect(() => workerBbbSecret(MASTER, "bbb/x", "bbb-1")).toThrow(/fleet/);
    expect(() => workerKeyId("bbb", "Bbb-1")).toThrow(/server/);
  });
});
