/**
 * The few DOM types the dashboard uses, declared here rather than through
 * TypeScript's `dom` lib: the repository type-checks as one Node program, and
 * the `dom` lib's globals would clash with Node's there.
 */
export interface Elem {
  textContent: string | null;
  className: string;
  tabIndex: number;
  value: string;
  readonly dataset: Record<string, string | undefined>;
  append(...nodes: Elem[]): void;
  replaceChildren(...nodes: Elem[]): void;
  setAttribute(name: string, value: string): void;
  addEventListener(type: string, listener: (event: DomEvent) => void): void;
  insertRow(): Elem;
  insertCell(): Elem;
}

export interface DomEvent {
  readonly key?: string;
  preventDefault(): void;
}

interface Dom {
  document: {
    querySelector(selector: string): Elem | null;
    createElement(tag: string): Elem;
  };
  sessionStorage: { getItem(k: string): string | null; setItem(k: string, v: string): void };
  location: { origin: string };
}

const dom = globalThis as unknown as Dom;

/** The element matching `selector`; the page is static, so a miss is a bug. */
export function $(selector: string): Elem {
  const el = dom.document.querySelector(selector);
  if (!el) throw new Error(`dashboard: no element ${selector}`);
  return el;
}

export const element = (tag: string): Elem => dom.document.createElement(tag);
export const session = () => dom.sessionStorage;
export const origin = () => dom.location.origin;
