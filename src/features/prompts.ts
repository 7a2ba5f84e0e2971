/**
 * Modal confirmations and offers go through here, so that automation (another extension, or
 * our own tests in the real extension host) can answer them through the extension's API
 * instead of a person. The UI tests answer the real dialogs with real clicks and keys.
 *
 * Which button Enter presses: VS Code puts its own "Cancel" (the close affordance) last and
 * gives the keyboard focus to the FIRST of our buttons — in the browser's dialog and as the
 * native dialog's `defaultId` on desktop (mainThreadMessageService passes our items in order,
 * the close affordance as `cancelButton`). So a dialog whose first button is the risky one
 * does it on Enter. `ask` therefore takes the buttons with the safe one first.
 */
import * as vscode from 'vscode';

/**
 * Answers a dialog instead of a person: `true` presses `confirmLabel` (the dialog's risky
 * button), `false`/`undefined` cancels, a string presses the button with that title.
 */
export type ConfirmationHandler = (
  message: string,
  detail: string,
  confirmLabel: string,
  buttons: readonly string[],
) => boolean | string | undefined | Promise<boolean | string | undefined>;

let handler: ConfirmationHandler | undefined;

export function setConfirmationHandler(h: ConfirmationHandler | undefined): void {
  handler = h;
}

function answer(a: boolean | string | undefined, confirmLabel: string, buttons: readonly string[]): string | undefined {
  if (a === true) return confirmLabel;
  if (typeof a === 'string' && buttons.includes(a)) return a;
  return undefined;
}

/**
 * A modal warning with `buttons` in this order (the first is the default: Enter presses it,
 * so put the safe choice first where the risky one must not happen by a reflex) and VS
 * Code's Cancel. Returns the title pressed, undefined for Cancel/Escape.
 */
export async function ask(message: string, detail: string, buttons: readonly string[], confirmLabel: string): Promise<string | undefined> {
  if (handler) return answer(await handler(message, detail, confirmLabel, buttons), confirmLabel, buttons);
  return vscode.window.showWarningMessage(message, { modal: true, detail }, ...buttons);
}

/** A modal warning with one confirming button (the default); true when it was pressed. */
export async function confirm(message: string, detail: string, confirmLabel: string): Promise<boolean> {
  return (await ask(message, detail, [confirmLabel], confirmLabel)) === confirmLabel;
}

/** A non-modal offer (a notification with buttons); the handler answers it too in tests. */
export async function offer(message: string, buttons: readonly string[]): Promise<string | undefined> {
  if (handler) return answer(await handler(message, '', buttons[0] ?? '', buttons), buttons[0] ?? '', buttons);
  return vscode.window.showInformationMessage(message, ...buttons);
}
