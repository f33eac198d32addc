// How commands write to stderr: log lines and warnings prefixed with the tool's name (the service's journal
// and a terminal both show who speaks), progress notes as they are. Results go to stdout, never here.

const PREFIX = 'pin-preload';

/** One log line: "pin-preload: LINE". Also the `log` the domain modules are given. */
export function logLine(line: string): void {
  process.stderr.write(`${PREFIX}: ${line}\n`);
}

/** "pin-preload: warning: TEXT": something the operator must know although the command goes on. */
export function warnLine(text: string): void {
  logLine(`warning: ${text}`);
}

/** "pin-preload: error: MESSAGE" (and "  hint: HINT"): how a command that failed says why. */
export function errorLines(message: string, hint: string | undefined): void {
  logLine(`error: ${message}`);
  if (hint) process.stderr.write(`  hint: ${hint}\n`);
}

/** Progress notes of a command with --quiet: unprefixed, as they stand between progress bars. */
export function progressNotes(quiet: boolean | undefined): (text: string) => void {
  return (text) => {
    if (!quiet) process.stderr.write(`${text}\n`);
  };
}
