/**
 * The ARI adapter the service runs on, chosen by ARI_CLIENT (config.ari.client): `ari-client` (src/ari/client.ts,
 * the ARI library) or `thin` (the default) (src/ari/thin-client.ts: node:http keep-alive pool + ws, no ari-client stack).
 * Both have the same public surface; only the chosen one's module is loaded (ari-client pulls swagger-client and more).
 */
import type { AriClient } from './client.js';
import type { AriClientOptions } from './common.js';
import type { ThinAriClient, ThinAriClientOptions } from './thin-client.js';

export type AriClientKind = 'ari-client' | 'thin';
export type AriAdapter = AriClient | ThinAriClient;
export type { AriClientOptions } from './common.js';

export async function createAriClient(opts: AriClientOptions & Partial<Pick<ThinAriClientOptions, 'eventFilter' | 'maxSockets' | 'rest'>> & { kind?: AriClientKind }): Promise<AriAdapter> {
  const { kind = 'thin', ...rest } = opts;
  if (kind === 'thin') {
    const { ThinAriClient } = await import('./thin-client.js');
    return new ThinAriClient(rest);
  }
  const { AriClient } = await import('./client.js');
  return new AriClient(rest);
}
