/**
 * How a call's flow waits for ARI events without a listener per wait: the flow states what it waits
 * for as a check on its own fields, every event of the call calls wake(), and every wait has a timeout.
 */
export class Waiters {
  private readonly waiting = new Set<() => void>();

  wake(): void {
    for (const w of [...this.waiting]) w();
  }

  /** resolves with check()'s first non-undefined value (re-checked on every wake) or 'timeout' */
  waitFor<T>(check: () => T | undefined, timeoutMs: number): Promise<T | 'timeout'> {
    const now = check();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const waiter = () => {
        const v = check();
        if (v !== undefined) done(v);
      };
      const done = (v: T | 'timeout') => {
        this.waiting.delete(waiter);
        if (timer) clearTimeout(timer);
        resolve(v);
      };
      this.waiting.add(waiter);
      if (Number.isFinite(timeoutMs)) timer = setTimeout(() => done('timeout'), timeoutMs);
    });
  }
}
