/**
 * Watch operator-edited files or folders and call back once per burst of changes. Editors replace files
 * (rename) as often as they write them, so the callback re-reads paths rather than trusting the event.
 * A path that cannot be watched is logged and skipped: the reload API still works.
 */
import { watch, type FSWatcher } from 'node:fs';
import type { Logger } from 'pino';

export function watchPaths(paths: string[], onChange: () => void, log: Logger, debounceMs = 250): () => void {
  const watchers: FSWatcher[] = [];
  let timer: NodeJS.Timeout | null = null;
  const changed = () => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      onChange();
    }, debounceMs);
  };
  for (const p of paths) {
    try {
      const w = watch(p, changed);
      w.on('error', (err) => log.warn({ err, path: p }, 'file watch failed; use the reload API'));
      watchers.push(w);
    } catch (err) {
      log.warn({ err, path: p }, 'cannot watch; use the reload API');
    }
  }
  return () => {
    if (timer) clearTimeout(timer);
    for (const w of watchers) w.close();
  };
}
