// SIGINT/SIGTERM as an AbortSignal for the commands that run long (bundle create, import, preload, run,
// serve). The first signal of each kind asks the work to stop; its listener is then gone, so a second one of
// the same kind gets Node's default and ends the process at once (the way out of a stop that hangs).

const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;
export type StopSignalName = (typeof STOP_SIGNALS)[number];

export interface StopSignals {
  /** Aborted at the first SIGINT or SIGTERM. */
  readonly signal: AbortSignal;
  /** Resolves with the name of the first signal. */
  readonly stopped: Promise<StopSignalName>;
  /** Removes the listeners not yet used: for commands that finish on their own. */
  dispose(): void;
}

/** Listens for SIGINT and SIGTERM; `onSignal` runs (e.g. to log) before the abort. */
export function stopOnSignals(onSignal?: (name: StopSignalName) => void): StopSignals {
  const controller = new AbortController();
  let resolveStopped!: (name: StopSignalName) => void;
  const stopped = new Promise<StopSignalName>((resolve) => {
    resolveStopped = resolve;
  });
  const listeners = STOP_SIGNALS.map((name) => {
    const listener = () => {
      onSignal?.(name);
      controller.abort();
      resolveStopped(name);
    };
    process.once(name, listener);
    return { name, listener };
  });
  return {
    signal: controller.signal,
    stopped,
    dispose: () => {
      for (const { name, listener } of listeners) process.off(name, listener);
    },
  };
}
