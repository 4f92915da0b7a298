import { describe, expect, it } from "vitest";
import { testSkillContext } from "../sdk/agent/test-context.js";
import { keywords, sentencesOf, summarize, textAgent, textStats } from "./text.js";

const article = `The mesh routes jobs to agents. Agents register their skills with the registry.
The registry tracks which agents are alive and what skills they offer. Weather was nice today.

The executor sends jobs to agents over the mesh and collects the results of the jobs.`;

describe("text agent", () => {
  it("splits sentences and picks the most representative ones in order", () => {
    expect(sentencesOf(article)).toHaveLength(5);
    const two = summarize(article, 2);
    expect(two).toHaveLength(2);
    expect(two.join(" ")).not.toContain("Weather");
    expect(article.indexOf(two[0]!)).toBeLessThan(article.indexOf(two[1]!));
    expect(summarize("One. Two.", 5)).toEqual(["One.", "Two."]);
  });

  it("ranks keywords without stopwords", () => {
    const k = keywords(article, 3).map((x) => x.keyword);
    expect(k).toContain("agents");
    expect(k).not.toContain("the");
  });

  it("counts words, sentences and paragraphs", () => {
    const s = textStats(article);
    expect(s).toMatchObject({ sentences: 5, paragraphs: 2 });
    expect(s.words).toBeGreaterThan(40);
    expect(textStats("")).toMatchObject({ words: 0, sentences: 0, averageWordLength: 0 });
  });

  it("exposes the three skills through the SDK shape", async () => {
    const out = await textAgent.skills["text.summarize"]!.handler(
      { text: article, maxSentences: 1 },
      testSkillContext(),
    );
    expect(out).toMatchObject({ sentences: [expect.any(String)] });
  });
});
