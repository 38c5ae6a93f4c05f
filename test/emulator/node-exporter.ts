import type { EmulatedCloud, EmulatedServer } from "./cloud.js";

/** The network device of every emulated server, as node-exporter names it on an IONOS VM. */
export const NETWORK_DEVICE = "ens6";

const CPU_MODES = ["idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"] as const;

function sample(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(6);
}

/**
 * node-exporter's text exposition for one server at the emulator's current time: the metric names and
 * labels of the real exporter (a subset of its collectors), with values from `load-model.ts`.
 */
export function renderNodeExporterMetrics(cloud: EmulatedCloud, server: EmulatedServer): string {
  cloud.accrue(server);
  const load = cloud.load(server);
  const lines: string[] = ["# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.", "# TYPE node_cpu_seconds_total counter"];
  server.cpu.forEach((cpu, index) => {
    for (const mode of CPU_MODES) {
      const value =
        mode === "idle" ? cpu.idle : mode === "user" ? cpu.user : mode === "system" ? cpu.system : mode === "softirq" ? cpu.softirq : 0;
      lines.push(`node_cpu_seconds_total{cpu="${index}",mode="${mode}"} ${sample(value)}`);
    }
  });
  const available = load.memoryTotalBytes - load.memoryUsedBytes;
  const uptimeStart = (server.poweredOnAt ?? cloud.clock.now()) / 1000;
  lines.push(
    "# HELP node_memory_MemTotal_bytes Memory information field MemTotal_bytes.",
    "# TYPE node_memory_MemTotal_bytes gauge",
    `node_memory_MemTotal_bytes ${sample(load.memoryTotalBytes)}`,
    "# HELP node_memory_MemAvailable_bytes Memory information field MemAvailable_bytes.",
    "# TYPE node_memory_MemAvailable_bytes gauge",
    `node_memory_MemAvailable_bytes ${sample(Math.round(available))}`,
    "# HELP node_memory_MemFree_bytes Memory information field MemFree_bytes.",
    "# TYPE node_memory_MemFree_bytes gauge",
    `node_memory_MemFree_bytes ${sample(Math.round(available * 0.6))}`,
    "# HELP node_network_receive_bytes_total Network device statistic receive_bytes.",
    "# TYPE node_network_receive_bytes_total counter",
    `node_network_receive_bytes_total{device="lo"} 0`,
    `node_network_receive_bytes_total{device="${NETWORK_DEVICE}"} ${sample(Math.floor(server.receiveBytes))}`,
    "# HELP node_network_transmit_bytes_total Network device statistic transmit_bytes.",
    "# TYPE node_network_transmit_bytes_total counter",
    `node_network_transmit_bytes_total{device="lo"} 0`,
    `node_network_transmit_bytes_total{device="${NETWORK_DEVICE}"} ${sample(Math.floor(server.transmitBytes))}`,
    "# HELP node_boot_time_seconds Node boot time, in unixtime.",
    "# TYPE node_boot_time_seconds gauge",
    `node_boot_time_seconds ${sample(Math.floor(uptimeStart))}`,
    "# HELP node_load1 1m load average.",
    "# TYPE node_load1 gauge",
    `node_load1 ${sample(load.busyCores)}`,
    "# HELP node_uname_info Labeled system information as provided by the uname system call.",
    "# TYPE node_uname_info gauge",
    `node_uname_info{domainname="(none)",machine="x86_64",nodename="${server.name}",release="6.1.0-emulated",sysname="Linux",version="#1 SMP"} 1`,
    "",
  );
  return lines.join("\n");
}
