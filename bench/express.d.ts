// The little of Express 5 that bench/floor-server.ts uses, typed here: express is a devDependency for that
// calibration server only, and @types/express is not installed (delete this file if it ever is).

declare module 'express' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  type Middleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

  interface Application {
    (req: IncomingMessage, res: ServerResponse): void;
    disable(setting: string): this;
    set(setting: string, value: unknown): this;
    use(middleware: Middleware): this;
  }

  export default function express(): Application;
}
