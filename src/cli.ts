// Placeholder; the CLI lands with the snapshot engine (issue 2).
console.log('ai-memory-backup');
