import { describe, expect, it } from "vitest";
import { addressPolicy } from "./address-policy.js";

describe("address policy", () => {
  const policy = addressPolicy();

  it("denies loopback, private, link-local, CGNAT, multicast, mapped and metadata addresses", () => {
    for (const address of [
      "127.0.0.1",
      "127.255.0.9",
      "0.0.0.0",
      "10.1.2.3",
      "172.31.0.1",
      "192.168.1.1",
      "100.64.0.1",
      "169.254.169.254",
      "224.0.0.1",
      "255.255.255.255",
      "::1",
      "::",
      "::ffff:127.0.0.1",
      "::ffff:7f00:1",
      "::ffff:169.254.169.254",
      "::ffff:8.8.8.8",
      "64:ff9b::a9fe:a9fe",
      "fd00:ec2::254",
      "fe80::1",
      "ff02::1",
    ]) {
      expect(policy.denied(address), address).toBeDefined();
    }
  });

  it("allows public addresses", () => {
    for (const address of ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "93.184.215.14"]) {
      expect(policy.denied(address), address).toBeUndefined();
    }
  });

  it("opens exactly the allowlisted ranges", () => {
    const open = addressPolicy(["10.1.0.0/16", "127.0.0.1"]);
    expect(open.denied("10.1.200.3")).toBeUndefined();
    expect(open.denied("127.0.0.1")).toBeUndefined();
    expect(open.denied("10.2.0.1")).toMatch(/private/);
    expect(open.denied("127.0.0.2")).toMatch(/loopback/);
    expect(() => addressPolicy(["10.0.0.0/33"])).toThrow(/invalid CIDR/);
  });

  it("names why", () => {
    expect(policy.denied("169.254.169.254")).toMatch(/metadata/);
    expect(policy.denied("localhost")).toMatch(/not an IP address/);
  });
});
