/**
 * The rehearsal lab: machines of the emulated cloud as Linux namespaces on a lab bridge (198.18.0.0/15, a range
 * that exists only here), all inside one unprivileged user namespace, so it needs no root. See README.md beside
 * this file for what runs where.
 *
 *   const lab = await Lab.start();
 *   const worker = await lab.machine("worker-1", { hostnames: ["worker-1.bbb.example.org"] });
 *   const result = await worker.exec("curl", ["-s", "http://198.18.0.1:8080/"]);
 *   await lab.stop();
 */
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, readlink, readdir, rm } from "node:fs/promises";
import { BlockList, createServer, connect, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { LabAuthority, type Certificate } from "./pki.js";
import { hostPathOf, makeMachineDir, prepareRoot, writeMachineFile, type MachineRoot } from "./machine-fs.js";

const execFileAsync = promisify(execFile);
const REPO = fileURLToPath(new URL("../../", import.meta.url));
const AGENT = fileURLToPath(new URL("./lab-agent.mjs", import.meta.url));
const MACHINE_RELAY = fileURLToPath(new URL("./machine-relay.mjs", import.meta.url));

/** The lab's network: the gateway (the lab's root namespace, "the internet") and the machines' range. */
export const LAB_NETWORK = { prefix: "198.18.0.0", length: 15, gateway: "198.18.0.1", firstMachine: 10 } as const;
const BRIDGE = "lab0";
/** Directories every machine has of its own; /etc starts as the host's, the others empty. */
const MACHINE_ROOTS = ["/etc", "/opt", "/usr/local", "/var/lib", "/var/log", "/run"] as const;
/** /usr/local of a fresh Debian or Ubuntu machine: empty directories (install scripts put programs in bin and sbin). */
const USR_LOCAL_DIRS = ["bin", "etc", "include", "lib", "sbin", "share", "src"] as const;

export class LabError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "LabError";
  }
}

export class LabCommandError extends LabError {
  constructor(
    readonly machine: string,
    readonly command: string,
    readonly code: number | null,
    readonly signal: string | null,
    readonly stderr: string,
  ) {
    super(`${machine}: ${command} ended with ${signal ?? `exit code ${code}`}: ${stderr.trim().slice(-2000)}`);
    this.name = "LabCommandError";
  }
}

export type Availability = { ok: true } | { ok: false; reason: string };

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to the process's stdin, which is then closed; secrets go here or in env, never in args. */
  input?: string;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number | null;
  signal: string | null;
}

function sleepUntilNextPoll(ms = 25): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` until it returns a value other than undefined, or throws after `timeoutMs`. */
export async function waitFor<T>(what: string, condition: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new LabError(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleepUntilNextPoll();
  }
}

async function childrenOf(pid: number): Promise<number[]> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, "utf8").catch(() => "");
  return text
    .split(" ")
    .filter((entry) => entry.trim() !== "")
    .map(Number);
}

/** A process started in the lab (through nsenter, which waits for it and mirrors its exit). */
export class LabProcess {
  private out = "";
  private err = "";
  readonly exited: Promise<ExecResult>;

  constructor(
    readonly where: string,
    readonly command: string,
    readonly child: ChildProcess,
  ) {
    child.stdout?.on("data", (chunk: Buffer) => (this.out += chunk.toString()));
    child.stderr?.on("data", (chunk: Buffer) => (this.err += chunk.toString()));
    this.exited = new Promise((resolve, reject) => {
      child.once("error", (error) => reject(new LabError(`${where}: could not start ${command}`, { cause: error })));
      child.once("close", (code, signal) => resolve({ stdout: this.out, stderr: this.err, code, signal }));
    });
  }

  get stdout(): string {
    return this.out;
  }

  get stderr(): string {
    return this.err;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Signals the program itself (nsenter's child inside the namespaces), and awaits its end. */
  async kill(signal: NodeJS.Signals = "SIGTERM"): Promise<ExecResult> {
    if (this.running && this.child.pid !== undefined) {
      const [inner] = await childrenOf(this.child.pid);
      try {
        process.kill(inner ?? this.child.pid, signal);
      } catch {
        // ended meanwhile
      }
    }
    return this.exited;
  }
}

/** Enters namespaces of `target` (a host PID) and runs a program there. */
function nsenter(target: number, namespaces: string[], command: string, args: readonly string[], options: RunOptions): ChildProcess {
  // nsenter's --wd opens the directory before it enters the mount namespace (the host's directory, or none): the
  // working directory is changed inside instead.
  const inside =
    options.cwd === undefined ? [command, ...args] : ["/bin/sh", "-c", 'cd -- "$0" && exec "$@"', options.cwd, command, ...args];
  const child = spawn("nsenter", ["--target", String(target), ...namespaces, "--preserve-credentials", "--wd=/", "--", ...inside], {
    env: options.env ?? { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  child.stdin?.end(options.input ?? "");
  child.stdin?.on("error", () => undefined);
  return child;
}

async function finish(process: LabProcess): Promise<ExecResult> {
  const result = await process.exited;
  if (result.code !== 0) throw new LabCommandError(process.where, process.command, result.code, result.signal, result.stderr);
  return result;
}

/** A listening TCP port in `/proc/<pid>/net/tcp{,6}`, i.e. in that process's network namespace. */
async function listening(pid: number, port: number): Promise<boolean> {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  for (const table of ["tcp", "tcp6"]) {
    const text = await readFile(`/proc/${pid}/net/${table}`, "utf8").catch(() => "");
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      // local_address is ADDR:PORT in hex, st 0A is LISTEN.
      if (fields[1]?.endsWith(`:${hexPort}`) && fields[3] === "0A") return true;
    }
  }
  return false;
}

export interface MachineOptions {
  /** Its lab address; the next free one when omitted. */
  address?: string;
  /** Names every lab machine resolves to this machine (its public DNS records). */
  hostnames?: string[];
}

/** One machine: its own network, mount, UTS and PID namespaces, its own /etc, /opt, /usr/local, /var/lib, /var/log, /run. */
export class Machine {
  private destroyed = false;
  /** Names only this machine resolves (e.g. compose service names), name → address. */
  private readonly localNames = new Map<string, string>();

  constructor(
    private readonly lab: Lab,
    readonly name: string,
    readonly address: string,
    readonly hostnames: readonly string[],
    readonly dir: string,
    readonly roots: readonly MachineRoot[],
    /** Host PID of the machine's init (PID 1 of its PID namespace). */
    readonly pid: number,
    private readonly init: LabProcess,
  ) {}

  /** Starts a program in the machine and returns at once. */
  run(command: string, args: readonly string[] = [], options: RunOptions = {}): LabProcess {
    this.assertAlive();
    const child = nsenter(this.pid, ["--user", "--net", "--mount", "--uts", "--pid"], command, args, options);
    return new LabProcess(this.name, [command, ...args].join(" "), child);
  }

  /** Runs a program to its end; rejects with its stderr unless it exits 0. */
  exec(command: string, args: readonly string[] = [], options: RunOptions = {}): Promise<ExecResult> {
    return finish(this.run(command, args, options));
  }

  /** Writes a file the machine sees at `path` (under one of its own directories). */
  async writeFile(path: string, content: string | Buffer, mode = 0o644): Promise<void> {
    await writeMachineFile(this.roots, path, content, mode);
  }

  async mkdir(path: string): Promise<void> {
    await makeMachineDir(this.roots, path);
  }

  async readFile(path: string): Promise<string> {
    return readFile(hostPathOf(this.roots, path), "utf8");
  }

  /** Adds names only this machine resolves, like a per-host hosts file entry. */
  async addHosts(names: Readonly<Record<string, string>>): Promise<void> {
    for (const [name, address] of Object.entries(names)) this.localNames.set(name, address);
    await this.writeHosts();
  }

  /** @internal */
  async writeHosts(): Promise<void> {
    if (this.destroyed) return;
    const lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback", `${this.address} ${this.name}`];
    for (const [name, address] of this.lab.publishedNames()) lines.push(`${address} ${name}`);
    for (const [name, address] of this.localNames) lines.push(`${address} ${name}`);
    await this.writeFile("/etc/hosts", `${lines.join("\n")}\n`);
  }

  /** Whether something listens on TCP `port` in the machine now. */
  listens(port: number): Promise<boolean> {
    return listening(this.pid, port);
  }

  /** Resolves once something listens on TCP `port` in the machine. */
  async waitForPort(port: number, timeoutMs = 20_000): Promise<void> {
    await waitFor(`${this.name} to listen on port ${port}`, async () => ((await listening(this.pid, port)) ? true : undefined), timeoutMs);
  }

  /**
   * Makes a server of the test process (on 127.0.0.1:`target.port`) answer in this machine at `listen` (default: every
   * address, `port` as the target's), for emulated services that stand where real ones would (BigBlueButton's API on
   * a worker, Scalelite on the control node). With `tls` (certificate and key paths as the machine sees them) the
   * machine terminates TLS, as the real service's web server would. The relay is a process of the machine: stopping
   * or crashing the machine ends it.
   */
  async serveFromOutside(
    target: { port: number },
    options: { host?: string; port?: number; tls?: { certificatePath: string; keyPath: string } } = {},
  ): Promise<LabProcess> {
    const socketPath = await this.lab.socketToLoopback(target.port);
    const args = [MACHINE_RELAY, options.host ?? "0.0.0.0", String(options.port ?? target.port), socketPath];
    if (options.tls) args.push(options.tls.certificatePath, options.tls.keyPath);
    const relay = this.run(process.execPath, args);
    await waitFor(`${this.name}'s relay to listen`, async () => {
      if (!relay.running) throw new LabError(`${this.name}: relay ended: ${relay.stderr}`);
      return relay.stdout.includes("listening") ? true : undefined;
    });
    return relay;
  }

  /** Host PIDs of the machine's processes other than its init. */
  async processes(): Promise<number[]> {
    const own = await readlink(`/proc/${this.pid}/ns/pid`).catch(() => undefined);
    if (own === undefined) return [];
    const found: number[] = [];
    for (const entry of await readdir("/proc")) {
      if (!/^\d+$/.test(entry) || Number(entry) === this.pid) continue;
      if ((await readlink(`/proc/${entry}/ns/pid`).catch(() => undefined)) === own) found.push(Number(entry));
    }
    return found;
  }

  /** Powers the machine off: every process gets SIGTERM, then SIGKILL after `graceMs`; address and files stay. */
  async stop(graceMs = 5_000): Promise<void> {
    const signalAll = async (signal: NodeJS.Signals) => {
      for (const pid of await this.processes()) {
        try {
          process.kill(pid, signal);
        } catch {
          // ended meanwhile
        }
      }
    };
    await signalAll("SIGTERM");
    try {
      await waitFor(`${this.name}'s processes to end`, async () => ((await this.processes()).length === 0 ? true : undefined), graceMs);
    } catch {
      await signalAll("SIGKILL");
      await waitFor(`${this.name}'s processes to be killed`, async () => ((await this.processes()).length === 0 ? true : undefined));
    }
  }

  /** The machine loses power at once: every process is killed (no graceful stop); address and files stay. */
  async kill(): Promise<void> {
    for (const pid of await this.processes()) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // ended meanwhile
      }
    }
    await waitFor(`${this.name}'s processes to be killed`, async () => ((await this.processes()).length === 0 ? true : undefined));
  }

  /** The machine dies at once (a crash): its namespaces and every process in them are gone; its files stay. */
  async crash(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    try {
      process.kill(this.pid, "SIGKILL");
    } catch {
      // already gone
    }
    await this.init.exited;
    this.lab.forget(this);
  }

  /** Removes the machine: crash, then its files. */
  async destroy(): Promise<void> {
    await this.crash();
    await rm(this.dir, { recursive: true, force: true });
  }

  get alive(): boolean {
    return !this.destroyed;
  }

  private assertAlive(): void {
    if (this.destroyed) throw new LabError(`machine ${this.name} is gone`);
  }
}

/** A relay from 127.0.0.1 outside into the lab. */
export interface Forward {
  /** A loopback port of the test process's host that reaches `target`. */
  port: number;
  /** The Unix socket that reaches `target`. */
  socketPath: string;
  target: { host: string; port: number };
}

let availability: Promise<Availability> | undefined;

export class Lab {
  private readonly machines = new Map<string, Machine>();
  private readonly servers: Server[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly loopbackSockets = new Map<number, Promise<string>>();
  private nextCommand = 1;
  private nextAddress: number = LAB_NETWORK.firstMachine;
  private nextLink = 1;
  private readonly pending = new Map<number, (answer: { ok: boolean; error?: string }) => void>();
  private stopped = false;

  private constructor(
    readonly dir: string,
    private readonly unshare: ChildProcess,
    /** Host PID of the lab agent, PID 1 of the lab's namespaces. */
    readonly pid: number,
    readonly authority: LabAuthority,
    private readonly hostCaBundle: string,
  ) {
    const answers = createInterface({ input: unshare.stdout! });
    answers.on("line", (line) => {
      const answer = JSON.parse(line) as { id?: number; ok: boolean; error?: string };
      if (answer.id === undefined) return;
      this.pending.get(answer.id)?.(answer);
      this.pending.delete(answer.id);
    });
  }

  /** Whether this host can run the lab, and why not: callers fall back to loopback mode. */
  static available(): Promise<Availability> {
    availability ??= (async (): Promise<Availability> => {
      if (process.platform !== "linux") return { ok: false, reason: `the lab needs Linux namespaces; this is ${process.platform}` };
      for (const program of ["unshare", "nsenter", "ip", "nft", "openssl"]) {
        try {
          await execFileAsync("sh", ["-c", `command -v ${program} || test -x /usr/sbin/${program}`]);
        } catch {
          return { ok: false, reason: `${program} is not installed: run \`npm run setup\`` };
        }
      }
      try {
        await execFileAsync("unshare", [
          "--user",
          "--map-root-user",
          "--net",
          "--mount",
          "--pid",
          "--fork",
          "--",
          "ip",
          "link",
          "add",
          "probe0",
          "type",
          "bridge",
        ]);
        return { ok: true };
      } catch (error) {
        const stderr = (error as { stderr?: string }).stderr?.trim() ?? String(error);
        return {
          ok: false,
          reason:
            `unprivileged user namespaces are not available (${stderr}); ` +
            "enable them (sysctl kernel.unprivileged_userns_clone=1, or on Ubuntu kernel.apparmor_restrict_unprivileged_userns=0) or run as root",
        };
      }
    })();
    return availability;
  }

  static async start(options: { dir?: string } = {}): Promise<Lab> {
    const usable = await Lab.available();
    if (!usable.ok) throw new LabError(`the rehearsal lab cannot start here: ${usable.reason}`);
    const dir = options.dir ?? (await mkdtemp(join(tmpdir(), "confscale-lab-")));
    const hostCaBundle = await readFile("/etc/ssl/certs/ca-certificates.crt", "utf8").catch(() => "");
    const authority = await LabAuthority.create(dir);
    const unshare = spawn(
      "unshare",
      [
        ...["--user", "--map-root-user", "--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "--"],
        ...[process.execPath, AGENT, BRIDGE, `${LAB_NETWORK.gateway}/${LAB_NETWORK.length}`, join(dir, "host-etc")],
      ],
      { cwd: REPO, stdio: ["pipe", "pipe", "pipe"] },
    );
    let stderr = "";
    unshare.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const ready = new Promise<void>((resolve, reject) => {
      const lines = createInterface({ input: unshare.stdout! });
      lines.once("line", (line) => (line.includes('"ready":true') ? resolve() : reject(new LabError(`lab agent: ${line}`))));
      unshare.once("exit", (code) => reject(new LabError(`the lab ended before it was ready (exit ${code}): ${stderr}`)));
    });
    try {
      await ready;
      const [agent] = await waitFor("the lab agent's PID", async () => {
        const children = await childrenOf(unshare.pid!);
        return children.length > 0 ? children : undefined;
      });
      return new Lab(dir, unshare, agent!, authority, hostCaBundle);
    } catch (error) {
      unshare.kill("SIGKILL");
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
  }

  get gateway(): string {
    return LAB_NETWORK.gateway;
  }

  private command(body: Record<string, unknown>): Promise<void> {
    const id = this.nextCommand++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, (answer) => (answer.ok ? resolve() : reject(new LabError(`lab agent: ${answer.error}`))));
      this.unshare.stdin!.write(`${JSON.stringify({ id, ...body })}\n`);
    });
  }

  /** Runs a program in the lab's root namespace: a host on the internet at the gateway address, outside every machine. */
  run(command: string, args: readonly string[] = [], options: RunOptions = {}): LabProcess {
    const child = nsenter(this.pid, ["--user", "--net", "--mount", "--pid"], command, args, options);
    return new LabProcess("lab", [command, ...args].join(" "), child);
  }

  exec(command: string, args: readonly string[] = [], options: RunOptions = {}): Promise<ExecResult> {
    return finish(this.run(command, args, options));
  }

  private hostsWritten: Promise<void> = Promise.resolve();

  /** Rewrites every machine's hosts file, one round at a time, each with the machines of its own time. */
  private publishHosts(): Promise<void> {
    const round = this.hostsWritten.then(async () => {
      for (const each of this.machines.values()) await each.writeHosts();
    });
    this.hostsWritten = round.catch(() => undefined);
    return round;
  }

  /** @internal every name → address that all machines resolve. */
  publishedNames(): [string, string][] {
    return [...this.machines.values()].flatMap((machine) => machine.hostnames.map((name): [string, string] => [name, machine.address]));
  }

  /** @internal */
  forget(machine: Machine): void {
    if (this.machines.get(machine.name) === machine) this.machines.delete(machine.name);
  }

  /** Addresses handed out for machines not made yet (a cloud reports a server's address before it boots). */
  private readonly reserved = new Set<string>();

  /** A free lab address, kept for a machine made later with it as `address`. */
  reserveAddress(): string {
    const address = this.allocateAddress(undefined);
    this.reserved.add(address);
    return address;
  }

  private allocateAddress(requested: string | undefined): string {
    const range = new BlockList();
    range.addSubnet(LAB_NETWORK.prefix, LAB_NETWORK.length);
    const taken = new Set([LAB_NETWORK.gateway, ...this.reserved, ...[...this.machines.values()].map((machine) => machine.address)]);
    if (requested !== undefined) {
      if (!range.check(requested))
        throw new LabError(`${requested} is outside the lab network ${LAB_NETWORK.prefix}/${LAB_NETWORK.length}`);
      if (this.reserved.delete(requested)) return requested;
      if (taken.has(requested)) throw new LabError(`${requested} is taken`);
      return requested;
    }
    for (; this.nextAddress < 65_000; this.nextAddress++) {
      const candidate = `198.18.${Math.floor(this.nextAddress / 256)}.${this.nextAddress % 256}`;
      if (!taken.has(candidate) && this.nextAddress % 256 !== 0 && this.nextAddress % 256 !== 255) return candidate;
    }
    throw new LabError("the lab network is full");
  }

  /** A new machine, running and reachable at its address once this resolves. */
  async machine(name: string, options: MachineOptions = {}): Promise<Machine> {
    if (this.stopped) throw new LabError("the lab is stopped");
    if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(name)) throw new LabError(`machine name ${JSON.stringify(name)} is not a host name`);
    if (this.machines.has(name)) throw new LabError(`machine ${name} exists`);
    const address = this.allocateAddress(options.address);
    const dir = join(this.dir, "machines", name);
    const roots: MachineRoot[] = MACHINE_ROOTS.map((mountPoint) => ({
      mountPoint,
      dir: join(dir, mountPoint.slice(1).replaceAll("/", "-")),
      ...(mountPoint === "/etc" ? { hostView: { inLab: join(this.dir, "host-etc"), onHost: "/etc" } } : {}),
    }));
    for (const root of roots) await prepareRoot(root);
    for (const sub of USR_LOCAL_DIRS) await makeMachineDir(roots, `/usr/local/${sub}`);
    await writeMachineFile(roots, "/etc/hostname", `${name}\n`);
    // The lab CA is a public CA to its machines, as Let's Encrypt's is to real ones.
    await writeMachineFile(roots, "/etc/ssl/certs/ca-certificates.crt", `${this.hostCaBundle}\n${this.authority.certificatePem}`);

    // PID 1 of the machine: mounts the machine's own directories, says so, then waits to be killed.
    const script = [
      "set -eu",
      'while [ "$#" -gt 1 ]; do mount --bind "$1" "$2"; shift 2; done',
      'hostname "$1"',
      "echo ready",
      "exec sleep infinity",
    ].join("\n");
    const mounts = roots.flatMap((root) => [root.dir, root.mountPoint]);
    const child = nsenter(
      this.pid,
      ["--user", "--net", "--mount", "--pid"],
      "unshare",
      ["--net", "--mount", "--uts", "--pid", "--fork", "--kill-child", "--mount-proc", "--", "bash", "-c", script, "init", ...mounts, name],
      {},
    );
    const init = new LabProcess(name, "init", child);
    const pid = await waitFor(`machine ${name} to boot`, async () => {
      if (!init.running) throw new LabError(`machine ${name} did not boot: ${init.stderr}`);
      if (!init.stdout.includes("ready")) return undefined;
      const [unshare] = await childrenOf(child.pid!);
      if (unshare === undefined) return undefined;
      const [machineInit] = await childrenOf(unshare);
      return machineInit;
    });
    const link = `lab${this.nextLink++}`;
    const machine = new Machine(this, name, address, options.hostnames ?? [], dir, roots, pid, init);
    try {
      // Outside the lab's PID namespace: `ip link … netns <pid>` reads the PID in the caller's, and `pid` is the host's.
      await finish(
        new LabProcess(
          "lab",
          "ip link add",
          nsenter(this.pid, ["--user", "--net"], "ip", ["-batch", "-"], {
            input: [
              `link add ${link} type veth peer name eth0 netns ${pid}`,
              `link set ${link} master ${BRIDGE}`,
              `link set ${link} up`,
              "",
            ].join("\n"),
          }),
        ),
      );
      await machine.exec("ip", ["-batch", "-"], {
        input: [
          "link set lo up",
          `addr add ${address}/${LAB_NETWORK.length} dev eth0`,
          "link set eth0 up",
          `route add default via ${LAB_NETWORK.gateway}`,
          "",
        ].join("\n"),
      });
    } catch (error) {
      await machine.destroy();
      throw error;
    }
    this.machines.set(name, machine);
    await this.publishHosts();
    return machine;
  }

  /** A certificate from the lab CA, which every machine trusts. */
  issueCertificate(names: { dns: string[]; ip?: string[] }): Promise<Certificate> {
    return this.authority.issue(names);
  }

  /**
   * Makes a server of the test process reachable from the lab at `gateway:port` (like a public cloud API):
   * the lab agent listens there and relays to a Unix socket that relays to `target` on 127.0.0.1.
   */
  async expose(target: { port: number }, options: { port?: number } = {}): Promise<{ host: string; port: number; url: string }> {
    const socketPath = await this.socketToLoopback(target.port);
    const port = options.port ?? target.port;
    await this.command({ op: "expose", host: LAB_NETWORK.gateway, port, socketPath });
    return { host: LAB_NETWORK.gateway, port, url: `http://${LAB_NETWORK.gateway}:${port}` };
  }

  /** @internal A Unix socket in the lab's directory whose connections go to 127.0.0.1:`port` outside; one per port. */
  socketToLoopback(port: number): Promise<string> {
    const existing = this.loopbackSockets.get(port);
    if (existing) return existing;
    const socketPath = join(this.dir, `loopback-${port}.sock`);
    const server = createServer((client) => this.pipe(client, connect(port, "127.0.0.1")));
    this.servers.push(server);
    const listening = new Promise<string>((resolve, reject) => server.once("error", reject).listen(socketPath, () => resolve(socketPath)));
    this.loopbackSockets.set(port, listening);
    return listening;
  }

  /** Makes `host:port` in the lab reachable from the test process at 127.0.0.1:<forward.port>. */
  async forward(host: string, port: number): Promise<Forward> {
    const socketPath = join(this.dir, `forward-${host}-${port}.sock`);
    await this.command({ op: "forward", socketPath, host, port });
    const server = createServer((client) => this.pipe(client, connect(socketPath)));
    await new Promise<void>((resolve, reject) => server.once("error", reject).listen(0, "127.0.0.1", resolve));
    this.servers.push(server);
    const address = server.address();
    if (address === null || typeof address === "string") throw new LabError("forward: no loopback port");
    return { port: address.port, socketPath, target: { host, port } };
  }

  private pipe(client: Socket, upstream: Socket): void {
    this.sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.once("error", end).once("close", end);
    upstream.once("error", end).once("close", end);
  }

  /** Ends every machine and relay and removes the lab's files; nothing of the lab is left running. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const machine of [...this.machines.values()]) await machine.crash();
    for (const socket of this.sockets) socket.destroy();
    await Promise.all(this.servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    if (this.unshare.exitCode === null && this.unshare.signalCode === null) {
      const exited = once(this.unshare, "exit");
      this.unshare.stdin?.end();
      await exited;
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}
