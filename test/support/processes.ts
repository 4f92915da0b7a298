// Moved to lib/testing/processes.ts (benchmarks use it too, and bench/ must not import test/);
// this re-export keeps older imports working.
export * from "../../lib/testing/processes.js";
