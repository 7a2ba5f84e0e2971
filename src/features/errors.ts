/** The action offered with an error notification, chosen by what went wrong; the words by where the user is (errorText.ts). */
import * as vscode from 'vscode';
import type { ErrorCode } from '../core/common/errors';
import { Commands } from '../contributionIds';
import { explainFailure, type FailureContext } from './errorText';
import { openSettings } from './settings';

export interface ErrorAction {
  title: string;
  run(): unknown;
}

const showLog: ErrorAction = { title: 'Show Log', run: () => vscode.commands.executeCommand(Commands.showLog) };
const selectDb: ErrorAction = { title: 'Select Database…', run: () => vscode.commands.executeCommand(Commands.selectDatabase) };
const settings: ErrorAction = { title: 'Open Settings', run: () => openSettings() };

export function errorActions(code: ErrorCode, ctx?: FailureContext): ErrorAction[] {
  switch (code) {
    case 'DB_NOT_FOUND':
    case 'DB_IS_DIRECTORY':
    case 'NOT_A_DATABASE':
    case 'DB_EMPTY':
      if (ctx && ctx.operation !== 'backup' && code === 'NOT_A_DATABASE') return [showLog];
      return ctx?.db?.via === 'setting' ? [settings, selectDb, showLog] : [selectDb, showLog];
    case 'TARGET_NOT_DIRECTORY':
    case 'TARGET_NOT_WRITABLE':
    case 'NO_SPACE':
    case 'SIGNING_KEY': // aiMemory.backup.signingKeyPath
      return [settings, showLog];
    default:
      return [showLog];
  }
}

/** An engine failure as one line for a notification and the log: what happened, where things are, what to do here. */
export function describeFailure(err: { code: string; message: string; hint?: string; state?: string }, ctx: FailureContext): { text: string; hint: string | undefined } {
  const { text, hint } = explainFailure(err, ctx);
  return { text, hint };
}
