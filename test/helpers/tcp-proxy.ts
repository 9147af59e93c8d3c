/**
 * A TCP proxy on loopback that a test can break, without touching the server behind it (shared by other tests):
 * - blackhole: bytes are silently dropped both ways while the connections stay open (no FIN, no RST), as a
 *   firewall rule dropping packets would do ("slow/silent");
 * - down: every open connection is reset and every new one is reset at once, as a stopped server's host answers
 *   (connection refused/reset: clients fail fast).
 * Needs no root.
 */
import net from 'node:net';

export interface TcpProxy {
  port: number;
  /** true: drop every byte from now on (new connections are accepted and then hear nothing either) */
  blackhole(on: boolean): void;
  /** true: reset every open connection and every new one (a stopped server); false: connections work again */
  down(on: boolean): void;
  /** connections currently open through the proxy (client side) */
  connections(): number;
  close(): Promise<void>;
}

function reset(s: net.Socket): void {
  try {
    s.resetAndDestroy();
  } catch {
    s.destroy();
  }
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  let dropping = false;
  let refusing = false;
  const sockets = new Set<net.Socket>();
  const clients = new Set<net.Socket>();
  const server = net.createServer((client) => {
    client.on('error', () => undefined);
    if (refusing) {
      reset(client);
      return;
    }
    const upstream = net.connect(target.port, target.host);
    clients.add(client);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => {
        sockets.delete(s);
        clients.delete(s);
      });
      s.on('error', () => undefined);
    }
    client.on('data', (d) => {
      if (!dropping) upstream.write(d);
    });
    upstream.on('data', (d) => {
      if (!dropping) client.write(d);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as net.AddressInfo).port,
    blackhole(on) {
      dropping = on;
    },
    down(on) {
      refusing = on;
      if (on) for (const s of [...sockets]) reset(s);
    },
    connections: () => clients.size,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
