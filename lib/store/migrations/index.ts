/**
 * Every migration, in order. Listed explicitly (MikroORM `migrationsList`)
 * instead of found by a file glob, so they run the same from the TypeScript
 * sources (tsx, vitest) and from the compiled JavaScript in `dist/`.
 *
 * To add one: write `NNNN-what-it-does.ts` exporting a `Migration` subclass
 * with `up()` and `down()`, and append it here. Never edit a released one.
 */
import type { MigrationObject } from "@mikro-orm/core";
import { InitialSchema } from "./0001-initial-schema.js";
import { AuditHead } from "./0002-audit-head.js";

export const migrations: MigrationObject[] = [
  { name: "0001-initial-schema", class: InitialSchema },
  { name: "0002-audit-head", class: AuditHead },
];
