// The few functions of `semver` (pinned in package.json) the mesh uses; the
// package ships no types and @types/semver is not a dependency.
declare module "semver" {
  interface Semver {
    valid(version: string): string | null;
    validRange(range: string): string | null;
    satisfies(version: string, range: string): boolean;
    maxSatisfying(versions: readonly string[], range: string): string | null;
    minVersion(range: string): { version: string } | null;
  }
  const semver: Semver;
  export default semver;
}
