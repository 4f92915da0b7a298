// Moved to lib/testing/goals.ts (benchmarks use it too, and bench/ must not import test/);
// this re-export keeps older imports working.
export * from "../../lib/testing/goals.js";
