/**
 * The text agent (`agent-text`): extractive summaries, keywords and statistics
 * of plain text, with no model and no network, so the mesh does useful work
 * out of the box.
 *
 * | capability | input | output |
 * | --- | --- | --- |
 * | `text.summarize` | `{ text, maxSentences? = 3 }` | `{ summary, sentences[] }` |
 * | `text.keywords` | `{ text, limit? = 10 }` | `{ keywords: [{ keyword, count, score }] }` |
 * | `text.stats` | `{ text }` | `{ characters, words, uniqueWords, sentences, paragraphs, ... }` |
 *
 * @example
 * summarize("Cats purr. Cats sleep a lot. Dogs bark.", 1); // ["Cats sleep a lot."]
 */
import { defineAgent } from "../sdk/agent/define-agent.js";

const maxTextLength = 1_000_000;

const stopwords = new Set(
  (
    "a about above after again against all am an and any are as at be because been before being " +
    "below between both but by can could did do does doing down during each few for from further " +
    "had has have having he her here hers herself him himself his how i if in into is it its itself " +
    "just me more most my myself no nor not now of off on once only or other our ours ourselves out " +
    "over own same she should so some such than that the their theirs them themselves then there " +
    "these they this those through to too under until up very was we were what when where which " +
    "while who whom why will with would you your yours yourself yourselves also may might must " +
    "shall one two new like get got use used using"
  ).split(" "),
);

/** Splits into sentences at `.`, `!` or `?` followed by space, and at blank lines. */
export function sentencesOf(text: string): string[] {
  return text
    .split(/(?<=[.!?])\s+|\n\s*\n/)
    .map((s) => s.replace(/\s+/g, " ").trim())
    .filter((s) => s.length > 0);
}

/** Lower-cased word tokens (letters, digits, inner apostrophes and hyphens). */
export function wordsOf(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+(?:['’-][\p{L}\p{N}]+)*/gu) ?? [];
}

function contentWords(text: string): string[] {
  return wordsOf(text).filter((w) => w.length > 2 && !stopwords.has(w) && !/^\d+$/.test(w));
}

/** The `max` sentences whose content words are most frequent in the text, in original order. */
export function summarize(text: string, max: number): string[] {
  const sentences = sentencesOf(text);
  if (sentences.length <= max) return sentences;
  const freq = new Map<string, number>();
  for (const w of contentWords(text)) freq.set(w, (freq.get(w) ?? 0) + 1);
  const top = Math.max(1, ...freq.values());
  const scored = sentences.map((s, i) => {
    const words = contentWords(s);
    const sum = words.reduce((a, w) => a + (freq.get(w) ?? 0) / top, 0);
    // Dividing by √length favours dense sentences without punishing all long ones;
    // the opening sentence usually states the topic.
    const score = words.length === 0 ? 0 : sum / Math.sqrt(words.length) + (i === 0 ? 0.25 : 0);
    return { i, s, score };
  });
  return scored
    .sort((a, b) => b.score - a.score || a.i - b.i)
    .slice(0, max)
    .sort((a, b) => a.i - b.i)
    .map((x) => x.s);
}

export interface Keyword {
  keyword: string;
  count: number;
  /** Share of the content words, 0–1. */
  score: number;
}

/** The most frequent content words. */
export function keywords(text: string, limit: number): Keyword[] {
  const words = contentWords(text);
  const counts = new Map<string, number>();
  for (const w of words) counts.set(w, (counts.get(w) ?? 0) + 1);
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .slice(0, limit)
    .map(([keyword, count]) => ({
      keyword,
      count,
      score: Math.round((count / words.length) * 10_000) / 10_000,
    }));
}

export function textStats(text: string) {
  const words = wordsOf(text);
  const sentences = sentencesOf(text).length;
  const letters = words.reduce((a, w) => a + w.length, 0);
  const round = (n: number) => Math.round(n * 100) / 100;
  return {
    characters: [...text].length,
    charactersNoSpaces: [...text.replace(/\s/g, "")].length,
    words: words.length,
    uniqueWords: new Set(words).size,
    sentences,
    paragraphs: text.split(/\n\s*\n/).filter((p) => p.trim().length > 0).length,
    averageWordLength: words.length ? round(letters / words.length) : 0,
    averageSentenceLength: sentences ? round(words.length / sentences) : 0,
    // 230 words a minute, a common adult silent-reading figure.
    readingTimeSeconds: Math.ceil((words.length / 230) * 60),
  };
}

const textInput = { type: "string", maxLength: maxTextLength } as const;

export const textAgent = defineAgent({
  name: "text",
  version: "1.0.0",
  owner: "agentmesh",
  description: "Extractive summaries, keywords and statistics of plain text.",
  skills: {
    "text.summarize": {
      sideEffect: "read_only",
      description: "Picks the most representative sentences of a text (extractive summary).",
      inputSchema: {
        type: "object",
        properties: {
          text: textInput,
          maxSentences: { type: "integer", minimum: 1, maximum: 50, default: 3 },
        },
        required: ["text"],
      },
      outputSchema: {
        type: "object",
        properties: {
          summary: { type: "string" },
          sentences: { type: "array", items: { type: "string" } },
        },
        required: ["summary", "sentences"],
      },
      tags: ["nlp", "fast"],
      handler: ({ text, maxSentences = 3 }: { text: string; maxSentences?: number }) => {
        const sentences = summarize(text, maxSentences);
        return { summary: sentences.join(" "), sentences };
      },
    },
    "text.keywords": {
      sideEffect: "read_only",
      description: "The most frequent meaningful words of a text.",
      inputSchema: {
        type: "object",
        properties: {
          text: textInput,
          limit: { type: "integer", minimum: 1, maximum: 100, default: 10 },
        },
        required: ["text"],
      },
      tags: ["nlp", "fast"],
      handler: ({ text, limit = 10 }: { text: string; limit?: number }) => ({
        keywords: keywords(text, limit),
      }),
    },
    "text.stats": {
      sideEffect: "read_only",
      description: "Counts characters, words, sentences and paragraphs; estimates reading time.",
      inputSchema: { type: "object", properties: { text: textInput }, required: ["text"] },
      tags: ["nlp", "fast"],
      handler: ({ text }: { text: string }) => textStats(text),
    },
  },
});
