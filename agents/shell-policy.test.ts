import { describe, expect, it } from "vitest";
import { settings } from "../lib/config/settings.js";
import { checkArgs, confinedPath, defaultAllowCommands } from "./shell-policy.js";

describe("shell argument policy", () => {
  it("allows the documented flags and operands", () => {
    for (const [command, args] of [
      ["date", ["-u", "+%F %T"]],
      ["date", ["-Iseconds"]],
      ["date", ["--date=2020-01-01", "-R"]],
      ["uname", ["-sr"]],
      ["sort", ["-t", ",", "-k2n", "-r", "-"]],
      ["head", ["-n", "5"]],
      ["tail", ["-n+3"]],
      ["cut", ["-d:", "-f1,3", "in.txt"]],
      ["tr", ["-d", "a-z"]],
      ["seq", ["1", "2", "10"]],
      ["echo", ["-f", "/etc/passwd", "--files0-from=x"]],
      ["wc", ["-l", "--", "-odd-name"]],
    ] as const) {
      expect(checkArgs(command, args), `${command} ${args.join(" ")}`).toBeUndefined();
    }
  });

  it("refuses flags that read or write files by name, run programs or change the system", () => {
    for (const [command, args, why] of [
      ["date", ["-f", ".agentmesh/admin.key"], /does not take -f/],
      ["date", ["--file=.agentmesh/admin.key"], /does not take --file/],
      ["date", ["-uf", "x"], /does not take -f/],
      ["date", ["-r", "/etc/shadow"], /does not take -r/],
      ["date", ["-s", "2020-01-01"], /does not take -s/],
      ["date", ["0101000020"], /operand/],
      ["date", ["-d", 'TZ="/etc/shadow" now'], /time zone/],
      ["sort", ["--files0-from=/etc/shadow"], /--files0-from/],
      ["sort", ["-o", "/tmp/x"], /-o/],
      ["sort", ["--compress-program=sh"], /--compress-program/],
      ["sort", ["--random-source=/dev/urandom"], /--random-source/],
      ["sort", ["-T", "/tmp"], /-T/],
      ["wc", ["--files0-from=-"], /--files0-from/],
      ["head", ["/etc/shadow"], /relative/],
      ["tail", ["-f", "x"], /-f/],
      ["cat", ["../../etc/passwd"], /leaves/],
      ["cat", ["a/../../b"], /leaves/],
      ["cat", ["~root/.ssh/id_rsa"], /relative/],
      ["uniq", ["in", "out"], /at most 1/],
      ["uname", ["-a", "x"], /no operands/],
      ["tr", ["a", "b", "c"], /at most 2/],
      ["seq", ["1", "1e9"], /operand/],
    ] as const) {
      expect(checkArgs(command, args), `${command} ${args.join(" ")}`).toMatch(why);
    }
  });

  it("confines paths to the working directory", () => {
    expect(confinedPath("data/in.txt")).toBeUndefined();
    expect(confinedPath("./a/../b")).toBeUndefined();
    expect(confinedPath("/proc/self/environ")).toMatch(/relative/);
    expect(confinedPath("..")).toMatch(/leaves/);
  });

  it("keeps the default allowlist to commands with a policy", () => {
    expect(defaultAllowCommands).not.toContain("xargs");
    expect(defaultAllowCommands).not.toContain("sh");
    expect(defaultAllowCommands).toContain("date");
    // The configuration reference names the same default.
    expect(settings.shellAllow.defaultText).toBe(
      `the commands with an argument policy: ${defaultAllowCommands.join(", ")}`,
    );
  });
});
