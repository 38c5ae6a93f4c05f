import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parse } from "yaml";
import type { Emulator } from "../emulator/emulator.js";
import { startUntilReady, type ManagedProcess } from "./process.js";

interface WriteFile {
  path: string;
  content: string;
  permissions?: string;
}

/** The files a worker's cloud-init writes, from the user data the fleet program gave its emulated machine. */
export function workerFilesOf(emulator: Emulator, serverName: string): Map<string, WriteFile> {
  const server = [...emulator.cloud.servers.values()].find((candidate) => candidate.name === serverName);
  if (server === undefined) throw new Error(`no emulated server ${serverName}`);
  const volume = emulator.cloud.datacenters.get(server.datacenterId)?.volumes.get(server.volumeIds[0] ?? "");
  const userData = Buffer.from(String(volume?.properties.userData ?? ""), "base64").toString("utf8");
  const files = (parse(userData) as { write_files?: WriteFile[] } | null)?.write_files ?? [];
  return new Map(files.map((file) => [file.path, file]));
}

/**
 * Runs the worker sidecar of an emulated worker as its unit would: the bundle the scaler serves, `node` with the
 * sidecar.env its user data writes, and the key and secret files from the same user data, in `dir` instead of
 * /etc/confscale. Only what differs on this machine is rewritten: the file paths, the BBB API URL (the emulator's) and,
 * when given, the scaler's URL and the reporting periods.
 */
export async function startWorkerSidecar(options: {
  emulator: Emulator;
  serverName: string;
  dir: string;
  scalerUrl?: string;
  extraEnv?: Record<string, string>;
}): Promise<ManagedProcess> {
  const { emulator, serverName } = options;
  const files = workerFilesOf(emulator, serverName);
  const fileOf = (path: string) => {
    const file = files.get(path);
    if (file === undefined) throw new Error(`${serverName}'s user data writes no ${path}`);
    return file.content;
  };
  const dir = join(options.dir, serverName);
  await mkdir(dir, { recursive: true });
  const keyFile = join(dir, "sidecar-key.pem");
  const secretFile = join(dir, "bbb-secret");
  await writeFile(keyFile, fileOf("/etc/confscale/sidecar-key.pem"), { mode: 0o600 });
  await writeFile(secretFile, fileOf("/etc/confscale/bbb-secret"), { mode: 0o600 });
  let env = fileOf("/etc/confscale/sidecar.env")
    .replace(/^CONFSCALE_KEY_FILE=.*$/m, `CONFSCALE_KEY_FILE=${keyFile}`)
    .replace(/^CONFSCALE_BBB_SECRET_FILE=.*$/m, `CONFSCALE_BBB_SECRET_FILE=${secretFile}`);
  const server = [...emulator.cloud.servers.values()].find((candidate) => candidate.name === serverName)!;
  env = env.replace(/^CONFSCALE_BBB_API_URL=.*$/m, `CONFSCALE_BBB_API_URL=${emulator.bbbUrl(server.id)}`);
  if (options.scalerUrl !== undefined) env = env.replace(/^CONFSCALE_SCALER_URL=.*$/m, `CONFSCALE_SCALER_URL=${options.scalerUrl}`);
  env = `${env.trimEnd()}\n${Object.entries(options.extraEnv ?? {})
    .map(([key, value]) => `${key}=${value}`)
    .join("\n")}\n`;
  const envFile = join(dir, "sidecar.env");
  await writeFile(envFile, env, { mode: 0o600 });
  const scalerUrl = /^CONFSCALE_SCALER_URL=(.*)$/m.exec(env)?.[1] ?? "";
  // As the unit's ExecStartPre: the bundle of the scaler's own version.
  const bundle = await fetch(`${scalerUrl}/dist/confscale-sidecar.mjs`);
  if (!bundle.ok) throw new Error(`the scaler answered ${bundle.status} for the sidecar bundle`);
  const program = join(dir, "confscale-sidecar.mjs");
  await writeFile(program, await bundle.text());
  return startUntilReady(process.execPath, [`--env-file=${envFile}`, program], /"event":"started"/, {
    env: { PATH: process.env.PATH ?? "" },
  });
}
