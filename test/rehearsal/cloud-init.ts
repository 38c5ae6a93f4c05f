/**
 * Boots a lab machine from rendered cloud-init user data, as cloud-init would on a real machine: `write_files`
 * laid into the machine's own directories, then every `runcmd` entry run in the machine in order. What is not
 * ours stays emulated: BigBlueButton's installer and its tools are skipped, except the one effect the rest relies
 * on, the Let's Encrypt certificate bbb-install obtains for `-s <hostname>` (issued by the lab CA instead).
 *
 * Commands run with stand-ins first on PATH: `systemctl` (recorded, then carried out by units.ts), `hostnamectl`
 * (sets the machine's host name) and `install` (owners dropped: a lab machine has a single user, README.md).
 */
import { z } from "zod";
import { parse } from "yaml";
import type { Lab, Machine } from "./lab.js";
import { ServiceManager } from "./units.js";

export class CloudInitError extends Error {
  constructor(
    readonly machine: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${machine}: cloud-init: ${message}`, options);
    this.name = "CloudInitError";
  }
}

const WriteFile = z.object({
  path: z.string().startsWith("/"),
  content: z.string().default(""),
  permissions: z
    .string()
    .regex(/^0?[0-7]{3,4}$/)
    .default("0644"),
  owner: z.string().optional(),
  defer: z.boolean().optional(),
  encoding: z.enum(["text/plain"]).optional(),
});

export const CloudConfig = z.object({
  packages: z.array(z.string()).default([]),
  write_files: z.array(WriteFile).default([]),
  runcmd: z.array(z.union([z.string(), z.array(z.union([z.string(), z.number()]).transform(String))])).default([]),
});
export type CloudConfig = z.infer<typeof CloudConfig>;

export function parseCloudConfig(userData: string): CloudConfig {
  if (!userData.startsWith("#cloud-config")) throw new CloudInitError("-", "user data is not a #cloud-config document");
  return CloudConfig.parse(parse(userData));
}

const SHIM_DIR = "/run/lab-bin";
const SYSTEMCTL_LOG = "/run/lab-systemctl";
const PATH = `${SHIM_DIR}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;

const SHIMS: Record<string, string> = {
  systemctl: `#!/bin/sh\n# The lab carries this out after the command that called it (test/rehearsal/units.ts).\nprintf '%s\\n' "$*" >> ${SYSTEMCTL_LOG}\n`,
  // No systemd-hostnamed in a lab machine: the host name is set in the machine's own UTS namespace instead.
  hostnamectl:
    '#!/bin/sh\n[ "$1" = set-hostname ] && [ "$#" -eq 2 ] && exec hostname "$2"\necho "hostnamectl $* is not rehearsed" >&2\nexit 1\n',
  install: [
    "#!/bin/bash",
    "# A lab machine has one user: ownership options are dropped, everything else is the real install.",
    "args=()",
    'while [ "$#" -gt 0 ]; do',
    '  case "$1" in',
    "    -o|-g|--owner|--group) shift 2 ;;",
    "    --owner=*|--group=*) shift ;;",
    '    *) args+=("$1"); shift ;;',
    "  esac",
    "done",
    'exec /usr/bin/install "${args[@]}"',
    "",
  ].join("\n"),
};

/** What the lab does instead of a runcmd entry that belongs to BigBlueButton. */
type Emulation = (machine: Machine, lab: Lab, argv: readonly string[]) => Promise<void>;

const bbbInstall: Emulation = async (machine, lab, argv) => {
  const at = argv.indexOf("-s");
  const hostname = at >= 0 ? argv[at + 1] : undefined;
  if (hostname === undefined) throw new CloudInitError(machine.name, `bbb-install without -s <hostname>: ${argv.join(" ")}`);
  const certificate = await lab.issueCertificate({ dns: [hostname] });
  const live = `/etc/letsencrypt/live/${hostname}`;
  await machine.writeFile(`${live}/fullchain.pem`, `${certificate.certificatePem}${lab.authority.certificatePem}`);
  await machine.writeFile(`${live}/privkey.pem`, certificate.privateKeyPem, 0o600);
};

/** The runcmd entries that are BigBlueButton's and what stands in for each; matched on the whole command line. */
const EMULATED: { pattern: RegExp; emulate?: Emulation }[] = [
  { pattern: /bbb-install\.sh -o |curl .*bbb-install\.sh/ },
  { pattern: /^bash \S*bbb-install\.sh /, emulate: bbbInstall },
  { pattern: /\bbbb-conf\b/ },
];

export interface BootRecord {
  /** Each runcmd entry and what became of it. */
  commands: { command: string; outcome: "ran" | "emulated" }[];
  services: ServiceManager;
}

/** Lays the user data's files into the machine and runs its commands; resolves when the last command is done. */
export async function bootFromUserData(lab: Lab, machine: Machine, userData: string): Promise<BootRecord> {
  const config = parseCloudConfig(userData);
  for (const file of config.write_files) await machine.writeFile(file.path, file.content, Number.parseInt(file.permissions, 8));
  for (const [name, script] of Object.entries(SHIMS)) await machine.writeFile(`${SHIM_DIR}/${name}`, script, 0o755);

  const services = new ServiceManager(machine);
  const record: BootRecord = { commands: [], services };
  for (const entry of config.runcmd) {
    // A string entry is a shell command line, a list is argv, as in cloud-init.
    const argv = typeof entry === "string" ? ["sh", "-c", entry] : entry;
    const line = typeof entry === "string" ? entry : entry.join(" ");
    const emulated = EMULATED.find(({ pattern }) => pattern.test(line));
    if (emulated) {
      await emulated.emulate?.(machine, lab, argv);
      record.commands.push({ command: line, outcome: "emulated" });
      continue;
    }
    const [command, ...args] = argv;
    if (command === undefined) continue;
    await machine.writeFile(SYSTEMCTL_LOG, "");
    try {
      await machine.exec(command, args, { env: { PATH, HOME: "/root" } });
    } catch (error) {
      throw new CloudInitError(machine.name, `runcmd ${line} failed`, { cause: error });
    }
    const requests = (await machine.readFile(SYSTEMCTL_LOG)).split("\n").filter((request) => request.trim() !== "");
    for (const request of requests) await services.systemctl(request.trim().split(/\s+/));
    record.commands.push({ command: line, outcome: "ran" });
  }
  return record;
}
