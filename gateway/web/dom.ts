/**
 * The few DOM types the dashboard uses, declared here rather than through
 * TypeScript's `dom` lib: the repository type-checks as one Node program, and
 * the `dom` lib's globals would clash with Node's there. Views build their
 * elements with `h` (and `svg` for charts) and swap them in with `patch`,
 * which keeps the keyboard focus where it was.
 */
export interface Elem {
  textContent: string | null;
  className: string;
  tabIndex: number;
  value: string;
  checked: boolean;
  disabled: boolean;
  hidden: boolean;
  id: string;
  readonly dataset: Record<string, string | undefined>;
  readonly isConnected: boolean;
  append(...nodes: (Elem | string)[]): void;
  replaceChildren(...nodes: (Elem | string)[]): void;
  setAttribute(name: string, value: string): void;
  getAttribute(name: string): string | null;
  addEventListener(type: string, listener: (event: DomEvent) => void): void;
  querySelector(selector: string): Elem | null;
  focus(): void;
}

export interface DomEvent {
  readonly key?: string;
  readonly target?: unknown;
  preventDefault(): void;
}

interface Dom {
  document: {
    querySelector(selector: string): Elem | null;
    createElement(tag: string): Elem;
    createElementNS(ns: string, tag: string): Elem;
    readonly activeElement: Elem | null;
    title: string;
  };
  sessionStorage: { getItem(k: string): string | null; setItem(k: string, v: string): void };
  location: { origin: string; hash: string };
  history: { replaceState(data: unknown, unused: string, url: string): void };
  navigator: { clipboard?: { writeText(text: string): Promise<void> } };
  addEventListener(type: string, listener: () => void): void;
}

const dom = globalThis as unknown as Dom;

/** The element matching `selector`; the page is static, so a miss is a bug. */
export function $(selector: string): Elem {
  const el = dom.document.querySelector(selector);
  if (!el) throw new Error(`dashboard: no element ${selector}`);
  return el;
}

type Attrs = Record<string, string | number | boolean | undefined | ((e: DomEvent) => void)>;
export type Child = Elem | string | undefined | false;

/**
 * An element: `on*` attributes are listeners, `false`/`undefined` ones are
 * left out, `true` ones are set empty (`hidden`, `disabled`, `required`).
 */
export function h(tag: string, attrs: Attrs = {}, ...children: Child[]): Elem {
  const el = dom.document.createElement(tag);
  set(el, attrs);
  for (const c of children) if (c !== undefined && c !== false) el.append(c);
  return el;
}

/** An SVG element (charts). */
export function svg(tag: string, attrs: Attrs = {}, ...children: Elem[]): Elem {
  const el = dom.document.createElementNS("http://www.w3.org/2000/svg", tag);
  set(el, attrs);
  el.append(...children);
  return el;
}

function set(el: Elem, attrs: Attrs): void {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "value") el.value = String(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

/**
 * Replaces `parent`'s children; the element that had the focus (found again
 * by its `data-key`) keeps it, so live updates do not throw a keyboard user out.
 */
export function patch(parent: Elem, ...children: Child[]): void {
  const active = dom.document.activeElement;
  const key = active?.dataset.key;
  parent.replaceChildren(...(children.filter((c) => c !== undefined && c !== false) as Elem[]));
  if (key && active && !active.isConnected) {
    parent.querySelector(`[data-key="${CSS_escape(key)}"]`)?.focus();
  }
}

/** Enough of CSS.escape for our keys (ids, capabilities). */
const CSS_escape = (s: string) => s.replace(/["\\]/g, "\\$&");

export const session = () => dom.sessionStorage;
export const origin = () => dom.location.origin;
export const hash = () => dom.location.hash;
export const setHash = (h: string) => {
  dom.location.hash = h;
};
/** Puts `h` in the address bar without a hashchange (no re-render): filters as they change. */
export const replaceHash = (h: string) => dom.history.replaceState(null, "", h);
export const onHashChange = (f: () => void) => dom.addEventListener("hashchange", f);
export const setTitle = (t: string) => {
  dom.document.title = t;
};
/** Copies text to the clipboard where the page may (secure contexts); false if it may not. */
export async function copy(text: string): Promise<boolean> {
  try {
    await dom.navigator.clipboard?.writeText(text);
    return dom.navigator.clipboard !== undefined;
  } catch {
    return false;
  }
}
