import type { Command } from "../command.js";

/** `agentmesh dev`: the whole mesh in one process on embedded defaults (what `npm start` runs). */
export const dev: Command = {
  name: "dev",
  summary: "run the whole mesh in one process on embedded defaults (npm start)",
  usage: "agentmesh dev",
  async run() {
    console.log("agentmesh dev: the embedded mesh is starting.");
    console.log("Components are added issue by issue; see README.md for what runs today.");
    console.log("Press Ctrl+C to stop.");
    await new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
    console.log("agentmesh dev: stopped.");
    return 0;
  },
};
