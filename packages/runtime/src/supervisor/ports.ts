import { createServer } from "node:net";

/**
 * A free TCP port on `host`, for `--http-port 0` under a supervisor: in a cluster, a
 * worker's listen(0) shares the port its siblings got only while one of them still
 * listens; a worker restarted after the last one died would get another port. So the
 * primary picks the port once and every worker, replacements included, listens on it.
 */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Where the primary tells its workers the ports it chose (the flags' values otherwise). */
export const WORKER_PORT_ENV = { http: "COIL_WORKER_HTTP_PORT", grpc: "COIL_WORKER_GRPC_PORT" } as const;
