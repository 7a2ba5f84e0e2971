/** The ids of what the extension contributes (package.json `contributes`): commands, context keys, the view, the extension. */
/** Every command the extension contributes; ids match package.json `contributes.commands`. */
export const Commands = {
  backup: 'aiMemory.backup',
  restore: 'aiMemory.restore',
  restoreLatest: 'aiMemory.restoreLatest',
  restoreSnapshot: 'aiMemory.restoreSnapshot',
  verifySnapshot: 'aiMemory.verifySnapshot',
  deleteSnapshot: 'aiMemory.deleteSnapshot',
  revealSnapshot: 'aiMemory.revealSnapshot',
  openBackupFolder: 'aiMemory.openBackupFolder',
  copySha256: 'aiMemory.copySha256',
  selectDatabase: 'aiMemory.selectDatabase',
  showLog: 'aiMemory.showLog',
  refresh: 'aiMemory.refresh',
  setUpRemote: 'aiMemory.setUpRemote',
  retryCopy: 'aiMemory.retryCopy',
  restoreRemoteSnapshot: 'aiMemory.restoreRemoteSnapshot',
  openSnapshot: 'aiMemory.openSnapshot',
  compareWithCurrent: 'aiMemory.compareWithCurrent',
  compareWithPrevious: 'aiMemory.compareWithPrevious',
  compareSnapshots: 'aiMemory.compareSnapshots',
  restoreMemories: 'aiMemory.restoreMemories',
  openMemoryDiff: 'aiMemory.openMemoryDiff',
  restorePreRestore: 'aiMemory.restorePreRestore',
  deletePreRestore: 'aiMemory.deletePreRestore',
} as const;

/** Context keys that drive `when` clauses, title buttons and `viewsWelcome`. */
export const ContextKeys = {
  /** Discovery has run once (welcome content waits for it, so it never flashes "not found"). */
  ready: 'aiMemory.ready',
  hasDatabase: 'aiMemory.hasDatabase',
  /** The database's path names no file (a wrong setting or configuration). */
  databaseMissing: 'aiMemory.databaseMissing',
  /** Where the database's path came from: 'setting' | 'remembered' | 'discovered'. */
  databaseVia: 'aiMemory.databaseVia',
  /** Several databases were found and the user has not chosen one yet. */
  needsChoice: 'aiMemory.needsChoice',
  hasSnapshots: 'aiMemory.hasSnapshots',
} as const;

export const VIEW_ID = 'aiMemory.snapshots';
export const EXTENSION_ID = 'ai-memory-tools.ai-memory-backup';
