// The part of Express 5 that the mirror (src/mirror/app.ts) and the bench's floor server use, typed here:
// @types/express is not installed (delete this file if it ever is). Request and Response are node:http's
// objects with the few properties Express adds that we read.

declare module 'express' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  /** The mirror reads only node:http's own properties of a request (the raw target before any router rewrites it). */
  export type Request = IncomingMessage;

  export interface Response extends ServerResponse {
    /** Per-request values, a fresh null-prototype object for every request. */
    locals: Record<string, unknown>;
  }

  export type NextFunction = (err?: unknown) => void;
  export type RequestHandler = (req: Request, res: Response, next: NextFunction) => void | Promise<void>;
  export type ErrorRequestHandler = (err: unknown, req: Request, res: Response, next: NextFunction) => void;
  /** A string pattern (path-to-regexp 8) or a RegExp matched against the path of the target. */
  export type PathPattern = string | RegExp;

  export interface Router extends RequestHandler {
    use(...handlers: RequestHandler[]): this;
    use(path: PathPattern, ...handlers: RequestHandler[]): this;
    /** GET, and HEAD when no HEAD handler is given. */
    get(path: PathPattern, ...handlers: RequestHandler[]): this;
  }

  export interface RouterOptions {
    caseSensitive?: boolean;
    strict?: boolean;
  }

  export interface Application {
    (req: IncomingMessage, res: ServerResponse): void;
    /** The app's router (created on first access): every app.use/app.get layer, callable on its own. */
    readonly router: Router;
    disable(setting: string): this;
    enable(setting: string): this;
    set(setting: string, value: unknown): this;
    use(...handlers: RequestHandler[]): this;
    use(path: PathPattern, ...handlers: RequestHandler[]): this;
    /** An error handler: Express tells it from a middleware by its four parameters. */
    use(handler: ErrorRequestHandler): this;
    get(path: PathPattern, ...handlers: RequestHandler[]): this;
  }

  interface Express {
    (): Application;
    Router(options?: RouterOptions): Router;
  }

  const express: Express;
  export default express;
}
