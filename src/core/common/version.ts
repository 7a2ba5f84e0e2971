import pkg from '../../../package.json';

export const TOOL_NAME = 'ai-memory-backup';
export const TOOL_VERSION: string = pkg.version;
