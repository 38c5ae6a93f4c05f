import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freeLoopbackPort } from "./ports.js";
import { requireProgram, startUntilReady, type ManagedProcess } from "./process.js";

/** A real redis-server on a free loopback port, private to one test file. */
export class RedisServer {
  private process: ManagedProcess | undefined;

  private constructor(
    readonly port: number,
    /** Its data directory, removed by stop(). */
    readonly dir: string,
  ) {}

  static async start(): Promise<RedisServer> {
    const dir = await mkdtemp(join(tmpdir(), "confscale-redis-"));
    const server = new RedisServer(await freeLoopbackPort(), dir);
    await server.resume();
    return server;
  }

  /** The server's process id while it runs (setpriv execs it, so the spawned process is the server). */
  get pid(): number | undefined {
    return this.process?.child.pid;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts the server again on the same port after `pause()` (an outage a client must survive). */
  async resume(): Promise<void> {
    const binary = requireProgram("redis-server", "redis-server");
    // Through setpriv's PR_SET_PDEATHSIG the kernel kills the server when the test file's process ends: a file whose
    // stop() never ran (a worker that died, a hook cut short) leaves no redis-server behind on the machine.
    this.process = await startUntilReady(
      requireProgram("setpriv", "util-linux"),
      [
        "--pdeathsig",
        "KILL",
        "--",
        binary,
        "--port",
        String(this.port),
        "--bind",
        "127.0.0.1",
        "--dir",
        this.dir,
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "yes",
      ],
      /Ready to accept connections/,
    );
  }

  /** Stops the server but keeps its port and directory for `resume()`. */
  async pause(): Promise<void> {
    await this.process?.stop();
    this.process = undefined;
  }

  async stop(): Promise<void> {
    await this.pause();
    await rm(this.dir, { recursive: true, force: true });
  }
}
