/** The action offered with an error notification, chosen by what went wrong. */
import * as vscode from 'vscode';
import type { ErrorCode } from '../core/common/errors';
import { Commands } from '../commands';
import { openSettings } from './settings';

export interface ErrorAction {
  title: string;
  run(): unknown;
}

const showLog: ErrorAction = { title: 'Show Log', run: () => vscode.commands.executeCommand(Commands.showLog) };
const selectDb: ErrorAction = { title: 'Select Database…', run: () => vscode.commands.executeCommand(Commands.selectDatabase) };
const settings: ErrorAction = { title: 'Open Settings', run: () => openSettings() };

export function errorActions(code: ErrorCode): ErrorAction[] {
  switch (code) {
    case 'DB_NOT_FOUND':
    case 'DB_IS_DIRECTORY':
    case 'NOT_A_DATABASE':
    case 'DB_EMPTY':
      return [selectDb, showLog];
    case 'TARGET_NOT_DIRECTORY':
    case 'TARGET_NOT_WRITABLE':
    case 'NO_SPACE':
      return [settings, showLog];
    default:
      return [showLog];
  }
}
