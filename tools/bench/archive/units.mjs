// How the archive benchmark prints sizes and times.

/** Bytes as decimal megabytes, no decimals. */
export function mb(bytes) {
  return (bytes / 1e6).toFixed(0);
}

/** Seconds as whole milliseconds. */
export function ms(seconds) {
  return (seconds * 1e3).toFixed(0);
}
