// The one SQLite file a node keeps (mirror index and preload state): opened in WAL mode, with
// versioned migrations that each module declares for its own tables.

import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../util/errors.js';

export type StateDatabase = Database.Database;

/** One schema step of one module; `version`s of a module start at 1 and only ever grow. */
export interface Migration {
  readonly module: string;
  readonly version: number;
  readonly sql: string;
}

export function openStateDatabase(file: string): StateDatabase {
  if (file !== ':memory:') mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  let db: StateDatabase | undefined;
  try {
    // SQLite opens lazily: a file that is not a database, or one that cannot be written, fails at the first
    // statement, so every one of these is part of opening it.
    db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL'); // a recorded state must survive power loss, not only a crash
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000'); // `status` reads while the service writes
    db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (module TEXT NOT NULL, version INTEGER NOT NULL, applied_at TEXT NOT NULL, PRIMARY KEY (module, version))');
    return db;
  } catch (err) {
    db?.close();
    throw new UserError('STATE_OPEN_FAILED', `cannot open state database ${file}: ${(err as Error).message}`, {
      subject: { kind: 'path', name: file },
      cause: err,
    });
  }
}

/** Applies the migrations not yet applied, each in its own transaction, in version order. */
export function migrate(db: StateDatabase, migrations: readonly Migration[]): void {
  const applied = db.prepare('SELECT 1 FROM schema_migrations WHERE module = ? AND version = ?');
  const record = db.prepare("INSERT INTO schema_migrations (module, version, applied_at) VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ','now'))");
  const ordered = [...migrations].sort((a, b) => (a.module === b.module ? a.version - b.version : a.module < b.module ? -1 : 1));
  for (const m of ordered) {
    if (applied.get(m.module, m.version)) continue;
    db.transaction(() => {
      db.exec(m.sql);
      record.run(m.module, m.version);
    })();
  }
}
