/**
 * A record write that must not be lost to a passing PostgreSQL hiccup: tried up to four times with
 * backoff (0.5 s, 1 s, 2 s). Never throws: a call or an agent goes on even when the database is down;
 * the final failure is logged with what was being written, so it can be recovered from the log.
 */
export async function retryWrite(fn: () => Promise<unknown>, onLost: (err: unknown) => void, attempts = 4): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await fn();
      return;
    } catch (err) {
      if (attempt >= attempts) {
        onLost(err);
        return;
      }
      await new Promise((r) => setTimeout(r, 250 * 2 ** attempt));
    }
  }
}
