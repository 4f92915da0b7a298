/**
 * Which arguments each allowlisted shell command accepts. A command on the
 * default allowlist has a policy here: every flag it may take is named (with
 * whether it takes a value), everything else is refused, and file operands
 * must be relative paths inside the job's own working directory. No flag
 * that reads or writes a file by name (`date -f`, `sort --files0-from`,
 * `sort -o`), runs a program (`sort --compress-program`) or changes the
 * system (`date -s`) is on any list.
 *
 * @example
 * checkArgs("date", ["-u", "+%F"]); // undefined: allowed
 * checkArgs("date", ["-f", ".agentmesh/admin.key"]); // "date does not take -f"
 */
import { isAbsolute, normalize, sep } from "node:path";

/** How a flag takes its value: none, any text, or a path confined to the working directory. */
type FlagKind = "none" | "value" | "path";

export interface CommandPolicy {
  /** Allowed flags, short (`-n`) and long (`--lines`). */
  flags: Record<string, FlagKind>;
  /** What the operands are: none at all, any text, confined paths, or text matching a pattern. */
  operands: "none" | "text" | "path" | RegExp;
  /** Most operands. Default unlimited. */
  maxOperands?: number;
  /** Refuses a flag value, e.g. a date string naming a time zone file. */
  checkValue?: (flag: string, value: string) => string | undefined;
  /** Takes every argument as text without parsing (echo prints its arguments, nothing else). */
  anyText?: boolean;
}

const lines = { "-n": "value", "--lines": "value", "-c": "value", "--bytes": "value" } as const;
const quiet = { "-q": "none", "--quiet": "none", "--silent": "none", "-v": "none" } as const;
const sortKeys = {
  "-b": "none",
  "-d": "none",
  "-f": "none",
  "-g": "none",
  "-h": "none",
  "-i": "none",
  "-M": "none",
  "-n": "none",
  "-r": "none",
  "-R": "none",
  "-s": "none",
  "-u": "none",
  "-V": "none",
  "-z": "none",
  "-k": "value",
  "-t": "value",
  "--ignore-leading-blanks": "none",
  "--dictionary-order": "none",
  "--ignore-case": "none",
  "--general-numeric-sort": "none",
  "--human-numeric-sort": "none",
  "--month-sort": "none",
  "--numeric-sort": "none",
  "--reverse": "none",
  "--stable": "none",
  "--unique": "none",
  "--version-sort": "none",
  "--zero-terminated": "none",
  "--key": "value",
  "--field-separator": "value",
} as const;

/** The default allowlist: commands useful on stdin and their own arguments, each with a policy. */
export const commandPolicies: Record<string, CommandPolicy> = {
  echo: { flags: {}, operands: "text", anyText: true },
  uname: {
    flags: Object.fromEntries(
      ["-a", "-s", "-n", "-r", "-v", "-m", "-p", "-i", "-o"].map((f) => [f, "none"]),
    ),
    operands: "none",
  },
  date: {
    flags: {
      "-u": "none",
      "--utc": "none",
      "--universal": "none",
      "-R": "none",
      "--rfc-email": "none",
      "-I": "none",
      "--iso-8601": "none",
      "--rfc-3339": "value",
      "-d": "value",
      "--date": "value",
    },
    // Only an output format: a bare operand would set the clock.
    operands: /^\+/,
    maxOperands: 1,
    // A TZ="..." inside a date string names a file the time zone is read from.
    checkValue: (_flag, value) =>
      /TZ\s*=/i.test(value) ? "a date may not name a time zone file" : undefined,
  },
  wc: {
    flags: Object.fromEntries(
      [
        "-c",
        "-m",
        "-l",
        "-w",
        "-L",
        "--bytes",
        "--chars",
        "--lines",
        "--words",
        "--max-line-length",
      ].map((f) => [f, "none"]),
    ),
    operands: "path",
  },
  sort: { flags: sortKeys, operands: "path" },
  head: { flags: { ...lines, ...quiet, "-z": "none" }, operands: "path" },
  // No -f/--follow: it waits for more input forever.
  tail: { flags: { ...lines, ...quiet, "-z": "none" }, operands: "path" },
  cat: {
    flags: Object.fromEntries(
      ["-A", "-b", "-e", "-E", "-n", "-s", "-t", "-T", "-v"].map((f) => [f, "none"]),
    ),
    operands: "path",
  },
  tr: {
    flags: { "-c": "none", "-C": "none", "-d": "none", "-s": "none", "-t": "none" },
    operands: "text",
    maxOperands: 2,
  },
  cut: {
    flags: {
      "-b": "value",
      "-c": "value",
      "-f": "value",
      "-d": "value",
      "-s": "none",
      "--complement": "none",
    },
    operands: "path",
  },
  // A second operand would be an output file.
  uniq: {
    flags: { "-c": "none", "-d": "none", "-u": "none", "-i": "none" },
    operands: "path",
    maxOperands: 1,
  },
  base64: {
    flags: { "-d": "none", "-i": "none", "-w": "value" },
    operands: "path",
    maxOperands: 1,
  },
  sha256sum: { flags: { "-b": "none", "-t": "none" }, operands: "path" },
  seq: { flags: { "-s": "value", "-w": "none" }, operands: /^-?[0-9.]+$/, maxOperands: 3 },
};

/** The commands that run when `AGENTMESH_SHELL_ALLOW` is not set. */
export const defaultAllowCommands = Object.keys(commandPolicies);

/**
 * Why `args` are refused for `command`, or undefined when its policy allows
 * them. A command without a policy (allowlisted explicitly by the operator)
 * takes any arguments.
 */
export function checkArgs(command: string, args: readonly string[]): string | undefined {
  const policy = commandPolicies[command];
  if (!policy || policy.anyText) return undefined;
  let operands = 0;
  let onlyOperands = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (onlyOperands || arg === "-" || !arg.startsWith("-")) {
      const why = checkOperand(command, policy, arg, ++operands);
      if (why) return why;
      continue;
    }
    if (arg === "--") {
      onlyOperands = true;
      continue;
    }
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = eq < 0 ? arg : arg.slice(0, eq);
      const kind = policy.flags[name];
      if (!kind) return `${command} does not take ${name}`;
      if (kind === "none") {
        if (eq >= 0) return `${name} takes no value`;
        continue;
      }
      const value = eq >= 0 ? arg.slice(eq + 1) : args[++i];
      if (value === undefined) return `${name} needs a value`;
      const why = checkValue(policy, name, kind, value);
      if (why) return why;
      continue;
    }
    // A cluster of short flags, the last of which may take a value: -un5, -k 2, -Iseconds.
    for (let j = 1; j < arg.length; j++) {
      const name = `-${arg[j]}`;
      const kind = policy.flags[name];
      if (!kind) return `${command} does not take ${name}`;
      if (kind === "none") {
        // -I takes its precision attached (-Iseconds) and nothing else.
        if (name === "-I") break;
        continue;
      }
      const value = j + 1 < arg.length ? arg.slice(j + 1) : args[++i];
      if (value === undefined) return `${name} needs a value`;
      const why = checkValue(policy, name, kind, value);
      if (why) return why;
      break;
    }
  }
  return undefined;
}

function checkOperand(
  command: string,
  policy: CommandPolicy,
  arg: string,
  count: number,
): string | undefined {
  if (policy.maxOperands !== undefined && count > policy.maxOperands) {
    return `${command} takes at most ${policy.maxOperands} operand(s)`;
  }
  const rule = policy.operands;
  if (rule === "none") return `${command} takes no operands`;
  if (rule === "text") return undefined;
  if (rule === "path") return confinedPath(arg);
  return rule.test(arg) ? undefined : `${command} does not take the operand ${JSON.stringify(arg)}`;
}

function checkValue(
  policy: CommandPolicy,
  flag: string,
  kind: FlagKind,
  value: string,
): string | undefined {
  if (kind === "path") return confinedPath(value);
  return policy.checkValue?.(flag, value);
}

/** A path is allowed only relative to, and inside, the job's working directory. */
export function confinedPath(path: string): string | undefined {
  if (path === "-") return undefined; // stdin
  if (path === "" || isAbsolute(path) || path.startsWith("~")) {
    return `path ${JSON.stringify(path)} must be relative to the job's working directory`;
  }
  const n = normalize(path);
  if (n === ".." || n.startsWith(`..${sep}`)) {
    return `path ${JSON.stringify(path)} leaves the job's working directory`;
  }
  return undefined;
}
