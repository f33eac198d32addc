// Progress of long byte-moving work on stderr: one updating line on a terminal, a plain line every ~5 s
// otherwise (logs, CI), nothing when quiet. Rate is over the last few seconds, the ETA from that rate.

import { formatBytes } from './size.js';

export interface ProgressState {
  readonly bytesDone: number;
  readonly bytesTotal: number;
  /** Extra words after the figures, e.g. "images 12/190". */
  readonly detail?: string;
}

export interface ProgressOptions {
  /** What is happening: "downloading", "verifying". */
  readonly title: string;
  readonly quiet?: boolean;
  readonly stream?: NodeJS.WriteStream;
  /** Defaults to the stream's isTTY. */
  readonly tty?: boolean;
  /** Seconds between plain lines when not on a terminal. */
  readonly plainIntervalSeconds?: number;
  readonly now?: () => number;
}

export interface ProgressReporter {
  update(state: ProgressState): void;
  /** Changes the title (a new phase) without resetting the rate. */
  setTitle(title: string): void;
  /** Clears the terminal line (so the next output starts clean). */
  finish(): void;
}

const WINDOW_MS = 10_000;

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function createProgress(options: ProgressOptions): ProgressReporter {
  const stream = options.stream ?? process.stderr;
  const tty = options.tty ?? stream.isTTY === true;
  const now = options.now ?? Date.now;
  const plainEvery = (options.plainIntervalSeconds ?? 5) * 1000;
  let title = options.title;
  const samples: Array<{ t: number; bytes: number }> = [];
  let lastDraw = Number.NEGATIVE_INFINITY;
  let drawn = false;

  const line = (state: ProgressState): string => {
    const t = now();
    samples.push({ t, bytes: state.bytesDone });
    while (samples.length > 2 && samples[0]!.t < t - WINDOW_MS) samples.shift();
    const first = samples[0]!;
    const rate = t > first.t ? ((state.bytesDone - first.bytes) * 1000) / (t - first.t) : 0;
    const percent = state.bytesTotal > 0 ? Math.floor((state.bytesDone * 100) / state.bytesTotal) : 100;
    const eta = rate > 0 ? formatDuration((state.bytesTotal - state.bytesDone) / rate) : '?';
    return `${title} ${formatBytes(state.bytesDone)} / ${formatBytes(state.bytesTotal)} (${percent}%)  ${formatBytes(rate)}/s  ETA ${eta}${state.detail ? `  ${state.detail}` : ''}`;
  };

  return {
    update(state) {
      if (options.quiet) return;
      const t = now();
      if (tty) {
        if (t - lastDraw < 200 && state.bytesDone < state.bytesTotal) {
          samples.push({ t, bytes: state.bytesDone });
          return;
        }
        stream.write(`\r\x1b[2K${line(state)}`);
        drawn = true;
      } else {
        if (t - lastDraw < plainEvery) {
          samples.push({ t, bytes: state.bytesDone });
          return;
        }
        stream.write(`${line(state)}\n`);
      }
      lastDraw = t;
    },
    setTitle(next) {
      title = next;
    },
    finish() {
      if (tty && drawn) stream.write('\r\x1b[2K');
      drawn = false;
    },
  };
}
