import { createPrivateKey, createPublicKey, hkdfSync, type KeyObject } from "node:crypto";
import { workerNameSchema } from "./config.js";

/**
 * Per-worker credentials, derived from the fleet's master secret (the scaler's CONFSCALE_BBB_SECRET) and the fleet and
 * server names with HKDF-SHA256: nothing per worker is stored, a worker's user data is the same on every `up`, and a
 * worker that leaks its own secret or key reveals nothing about any other worker's (HKDF outputs are independent).
 */

/** Changing it changes every worker's credentials (and so every worker's user data). */
const SALT = "confscale worker credentials v1";
const KEY_ID_PREFIX = "confscale-worker";
/** Fleet and server names are worker names: no `/`, so a key id splits back into them. */
const isName = (value: string) => workerNameSchema.safeParse(value).success;

export class WorkerCredentialsError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = "WorkerCredentialsError";
  }
}

export interface WorkerCredentials {
  /** The worker's own BBB API secret (hex): its `bbb-conf --setsecret`, its Scalelite registration, the scaler's calls. */
  bbbSecret: string;
  /** The key id of its sidecar's signing key; names the fleet and server the key may speak for. */
  keyId: string;
  /** Its sidecar's Ed25519 signing key, PKCS#8 PEM. */
  signingKeyPem: string;
}

function checkName(field: string, value: string): void {
  if (!isName(value)) throw new WorkerCredentialsError(field, "expected a lowercase name: letters, digits, -");
}

function derive(masterSecret: string, purpose: string, fleet: string, server: string, length: number): Buffer {
  if (masterSecret.length < 32) throw new WorkerCredentialsError("masterSecret", "must be at least 32 characters");
  checkName("fleet", fleet);
  checkName("server", server);
  // JSON keeps the three parts apart: no choice of names makes two (purpose, fleet, server) triples alike.
  return Buffer.from(hkdfSync("sha256", masterSecret, SALT, JSON.stringify([purpose, fleet, server]), length));
}

/** The worker's BBB API secret: 40 hex digits, the length and alphabet BBB's own generated secrets have. */
export function workerBbbSecret(masterSecret: string, fleet: string, server: string): string {
  return derive(masterSecret, "bbb-secret", fleet, server, 20).toString("hex");
}

export function workerKeyId(fleet: string, server: string): string {
  checkName("fleet", fleet);
  checkName("server", server);
  return `${KEY_ID_PREFIX}/${fleet}/${server}`;
}

/** The fleet and server a worker key id names, or undefined when it is not one. */
export function parseWorkerKeyId(keyId: string): { fleet: string; server: string } | undefined {
  const [prefix, fleet, server, ...rest] = keyId.split("/");
  if (prefix !== KEY_ID_PREFIX || fleet === undefined || server === undefined || rest.length > 0) return undefined;
  return isName(fleet) && isName(server) ? { fleet, server } : undefined;
}

// RFC 8410: PKCS#8 PrivateKeyInfo for Ed25519 is this fixed header followed by the 32-byte seed.
const ED25519_PKCS8_HEADER = Buffer.from("302e020100300506032b657004220420", "hex");

/** The worker's Ed25519 signing key (private). */
export function workerSigningKey(masterSecret: string, fleet: string, server: string): KeyObject {
  const seed = derive(masterSecret, "sidecar-signing-key", fleet, server, 32);
  return createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_HEADER, seed]), format: "der", type: "pkcs8" });
}

export function workerCredentials(masterSecret: string, fleet: string, server: string): WorkerCredentials {
  return {
    bbbSecret: workerBbbSecret(masterSecret, fleet, server),
    keyId: workerKeyId(fleet, server),
    signingKeyPem: workerSigningKey(masterSecret, fleet, server).export({ format: "pem", type: "pkcs8" }).toString(),
  };
}

/**
 * The public key of a worker key id, as SPKI PEM; undefined when the id is not a worker's or names another fleet than
 * `fleets` allows (the scaler derives keys only for the fleets it drives).
 */
export function workerPublicKeyPem(masterSecret: string, keyId: string, fleets?: readonly string[]): string | undefined {
  const named = parseWorkerKeyId(keyId);
  if (named === undefined || (fleets !== undefined && !fleets.includes(named.fleet))) return undefined;
  return createPublicKey(workerSigningKey(masterSecret, named.fleet, named.server))
    .export({ format: "pem", type: "spki" })
    .toString();
}

/*
 * Jitsi workers run the unmodified jitsi-autoscaler-sidecar, which signs RS256 only. An RSA key cannot be derived from
 * a secret with Node's crypto (its generator takes no seed), so each Jitsi worker's key pair is generated once by the
 * fleet program (infra/jitsiSidecarKey.ts) and kept, the private half as a secret, in the fleet stack's state: the
 * worker's user data stays the same on every `up`. The fleet stack's outputs carry each worker's key id and public key
 * (`servers.<name>.sidecarKey`), which the scaler serves at `/keys/<sha256 hex of kid>.pem`, its own key base URL.
 */

export const JITSI_KEY_ID_PREFIX = "confscale-jitsi";
/** RS256 as ASAP uses it; 2048 bits is RFC 7518's minimum for RS256 and keeps a fleet `up` quick. */
export const JITSI_SIDECAR_KEY_BITS = 2048;

export interface JitsiSidecarKeyPair {
  /** PKCS#8 PEM: the sidecar's ASAP_SIGNING_KEY_FILE. */
  privateKeyPem: string;
  /** SPKI PEM: what the key server publishes. */
  publicKeyPem: string;
}

// The two functions below run inside the fleet program's dynamic provider too (infra/jitsiSidecarKey.ts), which Pulumi
// serializes with every function it reaches: they load node:crypto at run time instead of capturing a module import.

/** A fresh RSA key pair for one Jitsi worker's sidecar. */
export function newJitsiSidecarKeyPair(bits: number = JITSI_SIDECAR_KEY_BITS): JitsiSidecarKeyPair {
  const { generateKeyPairSync } = process.getBuiltinModule("node:crypto");
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: bits });
  return {
    privateKeyPem: privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
    publicKeyPem: publicKey.export({ format: "pem", type: "spki" }).toString(),
  };
}

/** The first 16 hex digits of the SHA-256 of the key's DER: a new key under a reused server name gets a new key id. */
export function publicKeyFingerprint(publicKeyPem: string): string {
  const { createHash, createPublicKey } = process.getBuiltinModule("node:crypto");
  const der = createPublicKey(publicKeyPem).export({ format: "der", type: "spki" });
  return createHash("sha256").update(der).digest("hex").slice(0, 16);
}

/** `confscale-jitsi/<fleet>/<server>/<fingerprint>`: the sidecar's ASAP_JWT_KID, naming the fleet and server it speaks for. */
export function jitsiWorkerKeyId(fleet: string, server: string, publicKeyPem: string): string {
  checkName("fleet", fleet);
  checkName("server", server);
  return `${JITSI_KEY_ID_PREFIX}/${fleet}/${server}/${publicKeyFingerprint(publicKeyPem)}`;
}

/** The fleet, server and key fingerprint a Jitsi worker key id names, or undefined when it is not one. */
export function parseJitsiWorkerKeyId(keyId: string): { fleet: string; server: string; fingerprint: string } | undefined {
  const [prefix, fleet, server, fingerprint, ...rest] = keyId.split("/");
  if (prefix !== JITSI_KEY_ID_PREFIX || fleet === undefined || server === undefined || fingerprint === undefined || rest.length > 0)
    return undefined;
  return isName(fleet) && isName(server) && /^[0-9a-f]{16}$/.test(fingerprint) ? { fleet, server, fingerprint } : undefined;
}
