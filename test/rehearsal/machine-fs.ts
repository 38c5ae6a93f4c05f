/**
 * A machine's own /etc: a directory of the lab that starts as links to the host's /etc (mounted at `hostEtc`
 * inside the lab, see lab-agent.mjs) and becomes real, writable directories along every path the lab writes.
 * The host's files stay untouched and need no root; each machine writes its own hosts file, trust store and
 * whatever its cloud-init lays down.
 */
import { lstat, mkdir, readdir, rename, rm, symlink, writeFile, chmod } from "node:fs/promises";
import { dirname, join, posix, relative } from "node:path";

export class MachineFsError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
    this.name = "MachineFsError";
  }
}

/** One root directory (`/etc`, `/opt`, …) of a machine: `source` is its content on the host's file system. */
export interface MachineRoot {
  /** Absolute path inside the machine, e.g. /etc. */
  mountPoint: string;
  /** The directory outside that holds the machine's view. */
  dir: string;
  /** Where the host's directory is visible inside the lab, when the machine starts from it; otherwise empty. */
  hostView?: { inLab: string; onHost: string };
}

async function isLink(path: string): Promise<boolean> {
  return (await lstat(path).catch(() => undefined))?.isSymbolicLink() ?? false;
}

async function exists(path: string): Promise<boolean> {
  return (await lstat(path).catch(() => undefined)) !== undefined;
}

/** Fills `dir` with links to every entry of the host's directory `onHost`, which the machine sees at `inLab`. */
async function linkEntries(dir: string, hostView: { inLab: string; onHost: string }): Promise<void> {
  await mkdir(dir, { recursive: true });
  const entries = await readdir(hostView.onHost).catch(() => [] as string[]);
  for (const entry of entries) await symlink(join(hostView.inLab, entry), join(dir, entry));
}

export async function prepareRoot(root: MachineRoot): Promise<void> {
  if (root.hostView) await linkEntries(root.dir, root.hostView);
  else await mkdir(root.dir, { recursive: true });
}

/** Turns the linked directory `relativeDir` of `root` (and its parents) into real directories of links. */
async function materialize(root: MachineRoot, relativeDir: string): Promise<void> {
  let current = root.dir;
  for (const part of relativeDir.split("/").filter((segment) => segment !== "")) {
    current = join(current, part);
    if (await isLink(current)) {
      await rm(current);
      const inRoot = relative(root.dir, current);
      const hostView = root.hostView && {
        inLab: join(root.hostView.inLab, inRoot),
        onHost: join(root.hostView.onHost, inRoot),
      };
      if (hostView) await linkEntries(current, hostView);
      else await mkdir(current);
    } else if (!(await exists(current))) {
      await mkdir(current);
    }
  }
}

/** The root that holds `path` and the path inside it, or an error naming the roots a machine has. */
export function locate(roots: readonly MachineRoot[], path: string): { root: MachineRoot; inside: string } {
  if (!posix.isAbsolute(path)) throw new MachineFsError(path, "a machine path must be absolute");
  const normal = posix.normalize(path);
  for (const root of roots) {
    if (normal === root.mountPoint || normal.startsWith(`${root.mountPoint}/`)) {
      return { root, inside: normal.slice(root.mountPoint.length + 1) };
    }
  }
  throw new MachineFsError(path, `a machine writes only below ${roots.map((root) => root.mountPoint).join(", ")}`);
}

let written = 0;

/** Writes a file at `path` as the machine sees it, replacing a link to the host's file if there is one. */
export async function writeMachineFile(roots: readonly MachineRoot[], path: string, content: string | Buffer, mode = 0o644): Promise<void> {
  const { root, inside } = locate(roots, path);
  if (inside === "") throw new MachineFsError(path, "is a root directory, not a file");
  await materialize(root, dirname(inside));
  const target = join(root.dir, inside);
  if (await isLink(target)) await rm(target);
  // Written beside it and renamed over it: a program of the machine never reads a half-written file (its hosts file).
  const partial = `${target}.lab-${process.pid}-${(written += 1)}`;
  await writeFile(partial, content);
  await chmod(partial, mode);
  await rename(partial, target);
}

/** Makes `path` a real directory of the machine. */
export async function makeMachineDir(roots: readonly MachineRoot[], path: string): Promise<void> {
  const { root, inside } = locate(roots, path);
  await materialize(root, inside);
}

/** Where a machine's file lies outside, for reading. */
export function hostPathOf(roots: readonly MachineRoot[], path: string): string {
  const { root, inside } = locate(roots, path);
  return join(root.dir, inside);
}
