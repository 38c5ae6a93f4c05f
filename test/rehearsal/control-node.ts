/**
 * Boots the control node of the rehearsal from what the environment stack renders for it: its cloud-init (the compose
 * project under /opt/confscale), then what `pulumi up` delivers over SSH (infra/controlNode.ts: the env files, the
 * password file and scaler.yaml), then `docker compose up` carried out by the lab: each compose service that is ours or
 * runs here for real (the scaler, Redis, Prometheus) starts as a process of the machine with the environment Docker
 * Compose would give it (read by compose-go, scripts/compose-check), its `command:` and the files of its volumes.
 * Scalelite stays emulated: the emulator's Scalelite API answers at the compose service's name and port.
 *
 * Compose networking: every service here shares the machine's network namespace, so each compose service name
 * resolves to 127.0.0.1 through the machine's hosts file, and the services' ports must not clash (they do not).
 */
import { symlink } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { readFileSync } from "node:fs";
import { dirname } from "node:path";
import { parse } from "yaml";
import { z } from "zod";
import { CONTROL_NODE_SECRET_FILES, type ControlNodeSecretFiles } from "../../infra/templates.js";
import { enginePath } from "../../infra/toolchain.js";
import { realTool } from "../harness/realTools.js";
import { parseCloudConfig } from "./cloud-init.js";
import { LabError, type LabProcess, type Machine } from "./lab.js";
import { hostPathOf } from "./machine-fs.js";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
/** The compose project's directory on the control node (infra/templates.ts renderControlNodeUserData). */
export const PROJECT_DIR = "/opt/confscale";
/** Where named volumes live in the machine (Docker keeps them under /var/lib/docker/volumes). */
const VOLUMES_DIR = "/var/lib/docker/volumes";

const ServiceSchema = z.object({
  image: z.string().optional(),
  build: z.object({ context: z.string(), dockerfile: z.string() }).optional(),
  command: z.array(z.string()).optional(),
  volumes: z.array(z.string()).default([]),
});
const ComposeSchema = z.object({ services: z.record(z.string(), ServiceSchema) });
/** compose-check's output: each service's environment as Docker Compose resolves it (env_file, then environment:). */
const ResolvedSchema = z.object({
  services: z.record(z.string(), z.object({ environment: z.record(z.string(), z.string().nullable()).nullable() })),
});

/** What `pulumi up` delivers to the control node after cloud-init, keyed by its path under /opt/confscale. */
export interface ControlNodeDelivery {
  secretFiles: Readonly<ControlNodeSecretFiles>;
  scalerSettings: string;
}

export interface ControlNodeOptions {
  /** The control node's rendered cloud-init (renderControlNodeUserData). */
  userData: string;
  delivery: ControlNodeDelivery;
  /** The emulator's port on 127.0.0.1 outside: its Scalelite API answers at scalelite-api:3000 on the node. */
  scalelitePort: number;
  /** Start only these services (all rehearsed ones when omitted). */
  only?: readonly RehearsedServiceName[];
  /** The TLS certificate Let's Encrypt would give Caddy for the domain (from the lab CA). */
  certificate?: { certificatePem: string; privateKeyPem: string };
}

export interface RehearsedService {
  name: string;
  process: LabProcess;
  /** The environment it was started with, as compose resolved it (secrets included: never print it). */
  environment: Record<string, string>;
}

/** The services the lab runs for real, in compose order, and the ports they listen on when up. */
const REHEARSED: Record<string, { port: number }> = {
  redis: { port: 6379 },
  prometheus: { port: 9090 },
  scaler: { port: 8080 },
  caddy: { port: 443 },
};
export type RehearsedServiceName = keyof typeof REHEARSED;
/** Where Caddy's certificate goes in the machine (Caddy's own storage under its data volume is for ACME's). */
const CADDY_TLS = { certificatePath: "/etc/caddy/lab-tls/fullchain.pem", keyPath: "/etc/caddy/lab-tls/privkey.pem" };
/** Emulated compose services: the emulator's API answers at the service's name and port. */
const SCALELITE = { service: "scalelite-api", port: 3000 };

export class ControlNode {
  private constructor(
    readonly machine: Machine,
    readonly services: ReadonlyMap<string, RehearsedService>,
  ) {}

  /** Lays the cloud-init files, the delivered ones, then starts the compose services the lab rehearses. */
  static async boot(machine: Machine, options: ControlNodeOptions): Promise<ControlNode> {
    const config = parseCloudConfig(options.userData);
    for (const file of config.write_files) await machine.writeFile(file.path, file.content, Number.parseInt(file.permissions, 8));
    // The control node's runcmd only enables Docker and the compose unit; the lab carries out the compose project below.
    for (const [key, path] of Object.entries(CONTROL_NODE_SECRET_FILES)) {
      const content = options.delivery.secretFiles[key as keyof typeof CONTROL_NODE_SECRET_FILES];
      if (content === undefined) continue;
      await machine.writeFile(`${PROJECT_DIR}/${path}`, content, key === "nodeExporterPassword" ? 0o644 : 0o600);
    }
    await machine.writeFile(`${PROJECT_DIR}/scaler.yaml`, options.delivery.scalerSettings, 0o644);

    const composeText = await machine.readFile(`${PROJECT_DIR}/docker-compose.yml`);
    const compose = ComposeSchema.parse(parse(composeText));
    const resolved = await resolveEnvironments(machine);
    await machine.addHosts(Object.fromEntries(Object.keys(compose.services).map((name) => [name, "127.0.0.1"])));
    await machine.serveFromOutside({ port: options.scalelitePort }, { host: "127.0.0.1", port: SCALELITE.port });

    const services = new Map<string, RehearsedService>();
    if (options.certificate !== undefined) {
      await machine.writeFile(CADDY_TLS.certificatePath, options.certificate.certificatePem);
      await machine.writeFile(CADDY_TLS.keyPath, options.certificate.privateKeyPem, 0o600);
    }
    for (const [name, { port }] of Object.entries(REHEARSED)) {
      if (options.only !== undefined && !options.only.includes(name)) continue;
      if (name === "caddy" && options.certificate === undefined) continue;
      const service = compose.services[name];
      if (service === undefined) throw new LabError(`the compose file has no service ${name}`);
      const environment = Object.fromEntries(
        Object.entries(resolved.services[name]?.environment ?? {}).flatMap(([key, value]) => (value === null ? [] : [[key, value]])),
      );
      const process = await startService(machine, name, service, environment);
      services.set(name, { name, process, environment });
      await waitUntilListening(machine, name, process, port);
    }
    return new ControlNode(machine, services);
  }

  service(name: string): RehearsedService {
    const service = this.services.get(name);
    if (service === undefined) throw new LabError(`${name} is not a rehearsed service`);
    return service;
  }
}

/** Runs compose-go on the project in the machine's /opt/confscale: the environment each service gets. */
async function resolveEnvironments(machine: Machine): Promise<z.infer<typeof ResolvedSchema>> {
  const { stdout } = await machine.exec(realTool("compose-check"), [`${PROJECT_DIR}/docker-compose.yml`], { cwd: PROJECT_DIR });
  return ResolvedSchema.parse(JSON.parse(stdout));
}

/** Lays each `./file:/path` volume's file at its path and makes each named volume a directory; returns the latter. */
async function mountVolumes(machine: Machine, service: z.infer<typeof ServiceSchema>): Promise<Map<string, string>> {
  const named = new Map<string, string>();
  for (const volume of service.volumes) {
    const [source = "", target = ""] = volume.split(":");
    if (source.startsWith("./")) {
      const content = await machine.readFile(`${PROJECT_DIR}/${source.slice(2)}`);
      await machine.writeFile(target, content, 0o644);
    } else {
      // Under /var/lib the machine can hold the volume where the service expects it; elsewhere it gets Docker's place.
      const path = target.startsWith("/var/lib/") ? target : `${VOLUMES_DIR}/${source}`;
      await machine.mkdir(path);
      named.set(target, path);
    }
  }
  return named;
}

/** The CMD of a Dockerfile (its exec form), which a built service runs in the image's WORKDIR, the context's files. */
function dockerfileCommand(path: string): string[] {
  const command = /^CMD\s+(\[.*\])\s*$/m.exec(readFileSync(path, "utf8"))?.[1];
  if (command === undefined) throw new LabError(`${path}: no CMD [...]`);
  return z.array(z.string()).parse(JSON.parse(command));
}

async function startService(
  machine: Machine,
  name: string,
  service: z.infer<typeof ServiceSchema>,
  environment: Record<string, string>,
): Promise<LabProcess> {
  const named = await mountVolumes(machine, service);
  const path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  if (service.build !== undefined) {
    // The build context is the deployed commit's source (infra/controlNode.ts unpacks it there); here, this checkout.
    const context = `${PROJECT_DIR}/${service.build.context.replace(/^\.\//, "")}`;
    await machine.mkdir(dirname(context));
    await symlink(REPO.replace(/\/$/, ""), hostPathOf(machine.roots, context));
    const [program = "", ...args] = dockerfileCommand(`${REPO}${service.build.dockerfile}`);
    const home = `${VOLUMES_DIR}/${name}-home`;
    await machine.mkdir(home);
    // The image's Node and Pulumi CLI are the host's here; the lab CA stands in for the public CAs Node trusts.
    const env = {
      ...environment,
      PATH: enginePath({ PATH: path }),
      HOME: home,
      PULUMI_HOME: home,
      PULUMI_SKIP_UPDATE_CHECK: "true",
      NODE_ENV: "production",
      NODE_EXTRA_CA_CERTS: "/etc/ssl/certs/ca-certificates.crt",
    };
    return machine.run(program === "node" ? process.execPath : program, args, { env, cwd: context });
  }
  const [program = "", ...args] = service.command ?? [];
  if (name === "caddy") {
    // The rendered Caddyfile as is, but for where its certificate comes from: the lab has no ACME CA, so the site
    // gets the lab CA's certificate (as a worker's bbb-install does, cloud-init.ts) instead of Let's Encrypt's.
    const caddyfile = "/etc/caddy/Caddyfile";
    const text = await machine.readFile(caddyfile);
    const site = /^(\S+) \{$/m;
    if (!site.test(text)) throw new LabError(`${caddyfile}: no site block`);
    await machine.writeFile(caddyfile, text.replace(site, `$&\n\ttls ${CADDY_TLS.certificatePath} ${CADDY_TLS.keyPath}`));
    const data = named.get("/data") ?? "/var/lib/caddy";
    // The caddy image's command and its XDG directories (its data volume at /data).
    return machine.run("caddy", ["run", "--config", caddyfile, "--adapter", "caddyfile"], {
      env: { PATH: path, HOME: data, XDG_DATA_HOME: data, XDG_CONFIG_HOME: data, ...environment },
    });
  }
  if (name === "redis") return machine.run(program, args, { env: { PATH: path, ...environment }, cwd: named.get("/data") });
  if (name === "prometheus")
    // The image's entrypoint is the prometheus program and its working directory its data volume.
    return machine.run("prometheus", service.command ?? [], { env: { PATH: path, ...environment }, cwd: named.get("/prometheus") });
  throw new LabError(`the lab does not run the compose service ${name}`);
}

async function waitUntilListening(machine: Machine, name: string, process: LabProcess, port: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    // The scaler logs JSON lines on stdout, Redis and Prometheus on stderr.
    const output = () => `${process.stdout}${process.stderr}`.trim().slice(-3000);
    if (!process.running) throw new LabError(`${machine.name}: compose service ${name} exited: ${output()}`);
    if (await machine.listens(port)) return;
    if (Date.now() > deadline) throw new LabError(`${machine.name}: ${name} does not listen on ${port}: ${output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
