// URLs the user gives on the command line for plain HTTP(S) fetches (the update graph, the signature store).

import { UserError } from './errors.js';

/** `text` as an http(s) URL, or a usage error naming the option it came from (`hint`: how to fix it there). */
export function parseHttpUrlOption(text: string, option: string, hint?: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UserError('USAGE', `${option} "${text}" is not a URL`, { subject: { kind: 'option', name: option }, ...(hint !== undefined ? { hint } : {}) });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UserError('USAGE', `${option} "${text}" is not an http(s) URL`, { subject: { kind: 'option', name: option }, ...(hint !== undefined ? { hint } : {}) });
  return url;
}
