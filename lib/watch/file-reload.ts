/**
 * Hot reload of files that change under a running process — certificates
 * rotated by cert-manager, a policy bundle swapped in a ConfigMap: a debounced
 * watch on whole directories (writers replace files by rename, which a watch
 * on the file itself would lose), a poll that keeps working where `fs.watch`
 * fails or is unsupported (remounted volumes, some network filesystems), and
 * reloads that never overlap.
 *
 * @example
 * const reloads = serialReloads(async () => readAndSwap(), () => closed);
 * const watching = watchDirectories([certDir], () => void reloads.run(), { debounceMs: 25, pollMs: 5000 });
 * watching.close();
 * await reloads.settled();
 */
import { type FSWatcher, watch } from "node:fs";

export interface WatchOptions {
  /** Quiet time after the last change before `onChange` runs (writers touch files in bursts). */
  debounceMs: number;
  /** Also call `onChange` this often; 0 turns polling off. */
  pollMs: number;
  /** A directory whose watch failed; polling carries on. */
  onError?: (err: Error, dir: string) => void;
}

export interface DirectoryWatch {
  close(): void;
}

/** Calls `onChange` after changes in any of `dirs` (debounced) and on every poll. */
export function watchDirectories(
  dirs: Iterable<string>,
  onChange: () => void,
  options: WatchOptions,
): DirectoryWatch {
  const watchers: FSWatcher[] = [];
  let debounce: NodeJS.Timeout | undefined;
  let poll: NodeJS.Timeout | undefined;
  const changed = () => {
    if (debounce) clearTimeout(debounce);
    debounce = setTimeout(onChange, options.debounceMs);
    debounce.unref();
  };
  for (const dir of new Set(dirs)) {
    try {
      const watcher = watch(dir, { persistent: false }, changed);
      watcher.on("error", (err) => {
        watcher.close();
        options.onError?.(err, dir);
      });
      watchers.push(watcher);
    } catch (err) {
      options.onError?.(err as Error, dir);
    }
  }
  if (options.pollMs > 0) {
    poll = setInterval(onChange, options.pollMs);
    poll.unref();
  }
  return {
    close() {
      for (const w of watchers) w.close();
      if (debounce) clearTimeout(debounce);
      if (poll) clearInterval(poll);
    },
  };
}

export interface SerialReloads {
  /** Reloads now, or (while a reload runs) once more after it; resolves as `reloadOnce`. */
  run(): Promise<boolean>;
  /** Resolves when no reload is running. */
  settled(): Promise<void>;
}

/**
 * Wraps `reloadOnce` so reloads never overlap: a call while one runs returns
 * that run's promise and schedules exactly one more run after it (the files
 * may have changed again meanwhile), unless `closed()` by then.
 */
export function serialReloads(
  reloadOnce: () => Promise<boolean>,
  closed: () => boolean,
): SerialReloads {
  let running: Promise<boolean> | undefined;
  let again = false;
  const run = (): Promise<boolean> => {
    if (running) {
      again = true;
      return running;
    }
    running = reloadOnce().finally(() => {
      running = undefined;
      if (again && !closed()) {
        again = false;
        void run();
      }
    });
    return running;
  };
  return {
    run,
    async settled() {
      while (running) await running.catch(() => undefined);
    },
  };
}
