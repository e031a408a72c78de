import { CoilError } from "@coil/errors";

/** What decides whether the dashboard may be served. */
export interface DashboardExposure {
  /** The address the HTTP port listens on. */
  host: string;
  /** Whether a client without the bearer token is refused metadata (--auth-inference),
   * the access kind of the status feed, as of /metrics and the repository index. */
  metadataNeedsToken: boolean;
}

/**
 * The dashboard is off by default (`--dashboard` turns it on), and refused where it
 * would be open to the world: on an address other than loopback, the status feed must
 * need the server's bearer token (--auth-token-file with --auth-inference), as the
 * control plane does once enabled (docs/security.md). On loopback it is served as
 * /metrics is. Throws INVALID_ARGUMENT, naming both ways out.
 */
export function checkDashboardExposure({ host, metadataNeedsToken }: DashboardExposure): void {
  if (metadataNeedsToken || isLoopbackHost(host)) return;
  throw new CoilError(
    "INVALID_ARGUMENT",
    `the dashboard would show this server to anyone who reaches ${host}: serve it on loopback (--host 127.0.0.1, ` +
      "then a tunnel or a proxy), or with a bearer token that metadata needs (--auth-token-file FILE --auth-inference; " +
      "the page asks for the token)",
  );
}

/** 127.0.0.0/8, ::1 and localhost: addresses only this machine reaches. */
export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}
