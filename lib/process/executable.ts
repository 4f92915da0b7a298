/**
 * The first of several candidate paths that is an executable file, for
 * optional system tools (util-linux `setpriv`, `prlimit`, `unshare`) whose
 * absence means a weaker fallback rather than an error.
 *
 * @example
 * const setpriv = firstExecutable("/usr/bin/setpriv", "/bin/setpriv"); // undefined if missing
 */
import { accessSync, constants } from "node:fs";

export function firstExecutable(...paths: string[]): string | undefined {
  return paths.find((path) => {
    try {
      accessSync(path, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
