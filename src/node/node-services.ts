// The state database, node state and mirror bundle store a node command works with, opened together: in a
// module of their own, so a command that needs only these (`import`) does not load the sync's CRI, pull and
// mirror-server code.

import { BundleStore } from '../mirror/bundle-store.js';
import { openStateDatabase, type StateDatabase } from '../state/database.js';
import { NodeState } from '../state/node-state.js';
import type { NodeConfig } from './config.js';

/** The state database, node state and mirror bundle store, opened together. */
export interface NodeServices {
  readonly db: StateDatabase;
  readonly state: NodeState;
  readonly store: BundleStore;
  close(): void;
}

export async function openNodeServices(config: NodeConfig): Promise<NodeServices> {
  const db = openStateDatabase(config.paths.state);
  try {
    const state = new NodeState(db);
    const store = await BundleStore.open(db);
    return { db, state, store, close: () => db.close() };
  } catch (err) {
    db.close();
    throw err;
  }
}
