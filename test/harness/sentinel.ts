import { Redis } from "ioredis";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freeLoopbackPort } from "./ports.js";
import { requireProgram, startUntilReady, type ManagedProcess } from "./process.js";

export const PRIMARY_NAME = "mymaster";

/** A `redis-server` of the group on its own port and directory; started again on the same ones after a kill. */
class Node {
  process: ManagedProcess | undefined;
  constructor(
    readonly port: number,
    readonly dir: string,
  ) {}
}

/**
 * Redis with Sentinel as an operator runs it, on 127.0.0.1: a primary, one replica and three `redis-sentinel`s
 * (Debian's package) that agree (quorum 2) when the primary is down and promote the replica. With append-only
 * persistence: a node started again comes back with its data set and is made a replica by the sentinels. Without it,
 * a node back empty can be promoted by a second failover before it has copied the new primary's data (a stall of the
 * new primary longer than `down-after-milliseconds` is enough), and the new primary then copies the empty data set.
 */
export class SentinelGroup {
  private constructor(
    private readonly root: string,
    readonly nodes: Node[],
    readonly sentinelPorts: number[],
    private readonly sentinels: ManagedProcess[],
  ) {}

  static async start(options: { downAfterMs?: number } = {}): Promise<SentinelGroup> {
    const root = await mkdtemp(join(tmpdir(), "confscale-sentinel-"));
    const nodes = [new Node(await freeLoopbackPort(), join(root, "a")), new Node(await freeLoopbackPort(), join(root, "b"))];
    const group = new SentinelGroup(root, nodes, [], []);
    await group.startNode(nodes[0]!);
    await group.startNode(nodes[1]!, nodes[0]!.port);
    const sentinel = requireProgram("redis-sentinel", "redis-sentinel");
    for (let index = 0; index < 3; index += 1) {
      const port = await freeLoopbackPort();
      // Sentinel rewrites its file with what it learns (replicas, the other sentinels, a failover's outcome).
      const file = join(root, `sentinel-${index}.conf`);
      await writeFile(
        file,
        [
          `port ${port}`,
          "bind 127.0.0.1",
          `dir ${root}`,
          `sentinel monitor ${PRIMARY_NAME} 127.0.0.1 ${nodes[0]!.port} 2`,
          `sentinel down-after-milliseconds ${PRIMARY_NAME} ${options.downAfterMs ?? 1_000}`,
          `sentinel failover-timeout ${PRIMARY_NAME} 10000`,
          `sentinel parallel-syncs ${PRIMARY_NAME} 1`,
          "",
        ].join("\n"),
      );
      group.sentinels.push(await startUntilReady(sentinel, [file], /\+monitor master/));
      group.sentinelPorts.push(port);
    }
    return group;
  }

  private async startNode(node: Node, primaryPort?: number): Promise<void> {
    await mkdir(node.dir, { recursive: true });
    // Append-only, as the control node runs Redis (files/control-node/docker-compose.yml) and README asks of Sentinel
    // nodes: a node killed and started again loads what it had. Every write reaches the file's page cache before its
    // reply is sent, so a SIGKILL of the process loses none of it.
    const args = ["--port", String(node.port), "--bind", "127.0.0.1", "--dir", node.dir, "--save", "", "--appendonly", "yes"];
    if (primaryPort !== undefined) args.push("--replicaof", "127.0.0.1", String(primaryPort));
    node.process = await startUntilReady(
      requireProgram("redis-server", "redis-server"),
      args,
      primaryPort === undefined ? /Ready to accept connections/ : /MASTER <-> REPLICA sync: Finished with success/,
    );
  }

  /** `host:port,…` for SCALER_REDIS_SENTINELS. */
  get sentinelList(): string {
    return this.sentinelPorts.map((port) => `127.0.0.1:${port}`).join(",");
  }

  /** The primary's port as the sentinels name it now. */
  async primaryPort(): Promise<number> {
    const sentinel = new Redis({ port: this.sentinelPorts[0]!, host: "127.0.0.1" });
    try {
      const [, port] = (await sentinel.call("SENTINEL", "get-master-addr-by-name", PRIMARY_NAME)) as [string, string];
      return Number(port);
    } finally {
      sentinel.disconnect();
    }
  }

  /**
   * Resolves with the new primary's port once every sentinel has announced the failover (`+switch-master`: the one
   * that led it, the others as they take its configuration). A node that comes back empty before all of them know
   * of the failover can be taken for the primary still by one that does not, and the promoted replica made its replica
   * and emptied; Redis's own Sentinel tests wait for every sentinel the same way before restarting the old primary.
   * Rejects after `deadlineMs`, naming the sentinels that announced nothing.
   */
  async onSwitch(deadlineMs = 60_000): Promise<{ switched: Promise<number>; close: () => void }> {
    const subscribers = this.sentinelPorts.map((port) => new Redis({ port, host: "127.0.0.1" }));
    const heard = new Set<number>();
    const announced = subscribers.map(
      (subscriber, index) =>
        new Promise<number>((resolve) =>
          subscriber.on("message", (_channel: string, message: string) => {
            heard.add(index);
            resolve(Number(message.split(" ")[4]));
          }),
        ),
    );
    await Promise.all(subscribers.map((subscriber) => subscriber.subscribe("+switch-master")));
    // A failover that never comes fails here, naming the sentinels that stayed silent, not at the test's own timeout.
    let deadline: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_resolve, reject) => {
      deadline = setTimeout(() => {
        const silent = this.sentinelPorts.filter((_port, index) => !heard.has(index));
        reject(new Error(`no failover announced by the sentinels on ${silent.join(", ")} within ${deadlineMs / 1000} s`));
      }, deadlineMs);
    });
    const agreed = Promise.all(announced).then((ports) => {
      if (new Set(ports).size !== 1) throw new Error(`the sentinels announced different primaries: ${ports.join(", ")}`);
      return ports[0] as number;
    });
    const switched = Promise.race([agreed, late]).finally(() => clearTimeout(deadline));
    return {
      switched,
      close: () => {
        clearTimeout(deadline);
        subscribers.forEach((subscriber) => subscriber.disconnect());
      },
    };
  }

  /** SIGKILL to the node on `port`, as a crash of its machine. */
  async kill(port: number): Promise<void> {
    const node = this.node(port);
    const server = this.running(node);
    server.child.kill("SIGKILL");
    await server.stop();
    node.process = undefined;
  }

  /** SIGSTOP to the node on `port`, as a machine that stalls (it neither answers nor fails), until `resume`. */
  stall(port: number): { resume: () => void } {
    const child = this.running(this.node(port)).child;
    child.kill("SIGSTOP");
    return { resume: () => child.kill("SIGCONT") };
  }

  /** Starts a killed node again on its port, with what its append-only file holds; the sentinels make it a replica of the primary in force. */
  async restart(port: number): Promise<void> {
    await this.startNode(this.node(port));
  }

  private node(port: number): Node {
    const node = this.nodes.find((candidate) => candidate.port === port);
    if (node === undefined) throw new Error(`no node on ${port}`);
    return node;
  }

  private running(node: Node): ManagedProcess {
    if (node.process === undefined) throw new Error(`no running redis-server on ${node.port}`);
    return node.process;
  }

  async stop(): Promise<void> {
    for (const sentinel of this.sentinels) await sentinel.stop();
    // A stalled node takes its SIGTERM only once it runs again.
    for (const node of this.nodes) node.process?.child.kill("SIGCONT");
    for (const node of this.nodes) await node.process?.stop();
    await rm(this.root, { recursive: true, force: true });
  }
}
